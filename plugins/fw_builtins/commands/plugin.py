"""Registers the built-in subcommands. Each target is imported only when it runs."""

from fw import hookimpl


@hookimpl
def fw_register_commands(register):
    register("plugins", "fw_builtins.commands.plugins_cmd:plugins",
             help="List installed plugins, their hooks and the names they register.")
