"""`fw complete`: continue prompts with a model on a running OpenAI-compatible server.

Unlike `fw chat` there is no conversation: every prompt is completed on its own, through
/v1/completions, and printed as it streams in.
"""

from __future__ import annotations

import click
from pydantic import BaseModel, Field

from fw.cli.config_command import config_command
from fw.config import option
from fw_builtins.commands.client import (
    Client, ServerError, ServerOptions, echo_stream, fatal_errors, read_line,
)


class CompleteOptions(ServerOptions):
    group_title = "Completion options"
    group_help = "Which server and model to use, and how."

    quick: str | None = option(
        None, "Complete PROMPT, print the completion, and exit.", short="-q", metavar="PROMPT")


class CompleteConfig(BaseModel):
    options: CompleteOptions = Field(default_factory=CompleteOptions)


@config_command(CompleteConfig, name="complete",
                help="Complete prompts with a model on a running OpenAI-compatible server. "
                     "Each prompt stands alone; leave with Ctrl-D or Ctrl-C.")
def complete(config: CompleteConfig) -> None:
    options = config.options
    with fatal_errors():
        client = Client(options)
        model = options.model_name or client.first_model()
        if options.quick is not None:
            echo_stream(client.stream_completion(model, options.quick))
            return
        click.echo(f"Using model: {model}")
        click.echo("Type a prompt to complete; Ctrl-D or Ctrl-C leaves.")
        while (prompt := read_line()) is not None:
            if not prompt.strip():
                continue
            try:
                echo_stream(client.stream_completion(model, prompt))
            except ServerError as exc:
                click.echo(str(exc), err=True)
