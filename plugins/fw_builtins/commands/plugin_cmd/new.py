"""``fw plugin new NAME --kind KIND``: a plugin project from the template, ready to test."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import click
from pydantic import BaseModel, Field

from fw.cli.config_command import config_command
from fw.config import ConfigGroup, option
from fw_builtins.commands.plugin_cmd.render import KINDS, TemplateError, render

KindName = Literal[tuple(KINDS)]  # type: ignore[valid-type]


class NewPluginOptions(ConfigGroup):
    group_title = "Options"
    group_help = "Options of `fw plugin new`."

    name: Optional[str] = option(None, "The plugin's name, e.g. my-parser: the project is fw-plugin-NAME.")
    kind: Optional[KindName] = option(None, "What the plugin adds to fw.")
    output: str = option(".", "The folder the project folder is created in.")


class NewPluginConfig(BaseModel):
    options: NewPluginOptions = Field(default_factory=NewPluginOptions)


@config_command(NewPluginConfig, name="new", positional="name", positional_help="The plugin's name, e.g. my-parser.",
                help="Create a plugin project (pyproject, hook skeleton, tests, README) from fw's template.")
def new(config: NewPluginConfig) -> None:
    options = config.options
    if not options.name:
        raise click.UsageError("give the plugin's name: fw plugin new NAME --kind KIND")
    if options.kind is None:
        raise click.UsageError(f"give --kind, one of: {', '.join(KINDS)}")
    try:
        project = render(options.name, options.kind, Path(options.output))
    except TemplateError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"Created {project}\n\nNext:\n  cd {project}\n  pip install -e .\n  pytest\n\n"
               "The tests pass, and the xfailed ones are the skeleton's NotImplementedError parts:\n"
               "fill those in (README.md says where) and remove their xfail marks.")
