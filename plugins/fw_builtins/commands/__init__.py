"""Built-in `fw` subcommands."""
