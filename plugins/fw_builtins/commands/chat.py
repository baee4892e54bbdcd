"""`fw chat`: talk to a model on a running OpenAI-compatible server.

The whole conversation is sent with every turn (the server keeps no state), and each
reply is printed as it streams in. It imports neither torch nor `openai`, so it starts
at once.
"""

from __future__ import annotations

import click
from pydantic import BaseModel, Field

from fw.cli.config_command import config_command
from fw.config import option
from fw_builtins.commands.client import (
    Client, ServerError, ServerOptions, echo_stream, fatal_errors, read_line,
)


class ChatOptions(ServerOptions):
    group_title = "Chat options"
    group_help = "Which server and model to talk to, and how."

    system_prompt: str | None = option(
        None, "A system message put first in the conversation, for models that take one.")
    quick: str | None = option(
        None, "Send MESSAGE, print the reply, and exit.", short="-q", metavar="MESSAGE")


class ChatConfig(BaseModel):
    options: ChatOptions = Field(default_factory=ChatOptions)


@config_command(ChatConfig, name="chat",
                help="Chat with a model on a running OpenAI-compatible server. The conversation "
                     "is kept until you leave with Ctrl-D or Ctrl-C.")
def chat(config: ChatConfig) -> None:
    options = config.options
    with fatal_errors():
        client = Client(options)
        model = options.model_name or client.first_model()
        conversation: list[dict] = []
        if options.system_prompt is not None:
            conversation.append({"role": "system", "content": options.system_prompt})
        if options.quick is not None:
            conversation.append({"role": "user", "content": options.quick})
            echo_stream(client.stream_chat(model, conversation))
            return
        click.echo(f"Using model: {model}")
        click.echo("Type a message; Ctrl-D or Ctrl-C leaves.")
        _converse(client, model, conversation)


def _converse(client: Client, model: str, conversation: list[dict]) -> None:
    """The interactive loop. A server error is shown and the turn dropped, so the
    conversation sent next time holds only turns that got a reply."""
    while (message := read_line()) is not None:
        if not message.strip():
            continue
        conversation.append({"role": "user", "content": message})
        try:
            reply = echo_stream(client.stream_chat(model, conversation))
        except ServerError as exc:
            conversation.pop()
            click.echo(str(exc), err=True)
            continue
        conversation.append({"role": "assistant", "content": reply})

