"""``fw plugin``: tools for plugin authors (``fw plugins``, plural, lists installed ones)."""

from __future__ import annotations

import click

from fw_builtins.commands.plugin_cmd.new import new


@click.group(name="plugin", help="Tools for plugin authors. `fw plugins` lists the installed plugins.")
def plugin() -> None:
    pass


plugin.add_command(new)
