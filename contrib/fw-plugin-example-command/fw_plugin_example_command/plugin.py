"""Names the command and its one-line help; ``fw --help`` shows both without importing
``fw_plugin_example_command.hello``, which is loaded only when ``fw hello`` runs."""

from fw import hookimpl


@hookimpl
def fw_register_commands(register):
    register("hello", "fw_plugin_example_command.hello:hello", help="Greet someone (an example plugin command).")
