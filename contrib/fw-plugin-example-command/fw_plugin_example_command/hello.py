"""``fw hello``: its options are a config group, like every built-in command's, so it
gets ``--help=TEXT``, ``--config FILE.yaml`` and validated values for free."""

from __future__ import annotations

import click
from pydantic import BaseModel, Field

from fw.cli.config_command import config_command
from fw.config import ConfigGroup, option


class HelloOptions(ConfigGroup):
    group_title = "Hello"
    group_help = "Options of `fw hello`."

    name: str = option("world", "Who to greet.")
    times: int = option(1, "How many times to greet.", ge=1, le=10)
    shout: bool = option(False, "Greet in capitals.")


class HelloConfig(BaseModel):
    hello: HelloOptions = Field(default_factory=HelloOptions)


@config_command(HelloConfig, name="hello", positional="name", positional_help="Who to greet.",
                help="Greet someone: an example of a command added by a plugin.")
def hello(config: HelloConfig) -> None:
    options = config.hello
    greeting = f"Hello, {options.name}!"
    for _ in range(options.times):
        click.echo(greeting.upper() if options.shout else greeting)
