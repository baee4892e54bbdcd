"""`fw plugins`: what is installed, which hooks each plugin implements, what it registers."""

from __future__ import annotations

import json
from dataclasses import asdict

import click
from pydantic import BaseModel, Field

from fw.cli.config_command import config_command
from fw.config import ConfigGroup, option


class PluginsOptions(ConfigGroup):
    group_title = "Options"
    group_help = "Options of `fw plugins`."

    as_json: bool = option(False, "Print JSON (a list of plugins) for scripts.", flag="--json")


class PluginsConfig(BaseModel):
    options: PluginsOptions = Field(default_factory=PluginsOptions)


@config_command(PluginsConfig, name="plugins",
                help="List installed plugins, the hooks each implements and the names each registers.")
def plugins(config: PluginsConfig) -> None:
    from fw.plugins import get_host

    host = get_host()
    host.build_all_registries()
    infos = sorted(host.plugins.values(), key=lambda p: (not p.builtin, p.name))
    if config.options.as_json:
        click.echo(json.dumps([asdict(p) for p in infos], indent=2))
        return
    for info in infos:
        origin = "built-in" if info.builtin else f"{info.distribution or '?'} {info.version or ''}".strip()
        click.echo(f"{info.name}  ({origin}; {info.module})")
        if info.error:
            click.echo(f"  FAILED TO LOAD: {info.error}")
            continue
        click.echo(f"  hooks: {', '.join(info.hooks) or 'none'}")
        for kind, names in sorted(info.registers.items()):
            click.echo(f"  {kind}: {', '.join(sorted(names))}")
