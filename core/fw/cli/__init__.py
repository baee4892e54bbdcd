"""The `fw` command line: a click group whose subcommands come from plugins."""
