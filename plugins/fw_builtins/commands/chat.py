"""`fw chat`: talk to a model on a running OpenAI-compatible server.

Each reply is printed as it streams in. With ``--api chat`` (the default) the whole
conversation is sent with every turn; with ``--api responses`` the server keeps it
(each turn names the previous response with ``previous_response_id``). It imports
neither torch nor `openai`, so it starts at once.
"""

from __future__ import annotations

from typing import Literal

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
    api: Literal["chat", "responses"] = option(
        "chat", "chat: send the whole conversation each turn (/chat/completions); responses: let "
                "the server keep it (/responses with previous_response_id).")
    quick: str | None = option(
        None, "Send MESSAGE, print the reply, and exit.", short="-q", metavar="MESSAGE")


class ChatConfig(BaseModel):
    options: ChatOptions = Field(default_factory=ChatOptions)


class _ChatTurns:
    """The conversation kept here and sent whole (the chat completions API)."""

    def __init__(self, client: Client, model: str, system_prompt: str | None):
        self.client, self.model = client, model
        self.messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]

    def say(self, text: str) -> None:
        """Send one user turn and print the reply; a failed turn is dropped."""
        self.messages.append({"role": "user", "content": text})
        try:
            reply = echo_stream(self.client.stream_chat(self.model, self.messages))
        except ServerError:
            self.messages.pop()
            raise
        self.messages.append({"role": "assistant", "content": reply})


class _ResponseTurns:
    """The conversation kept by the server (the Responses API): each turn continues the
    last response that succeeded."""

    def __init__(self, client: Client, model: str, system_prompt: str | None):
        self.client, self.model, self.instructions = client, model, system_prompt
        self.previous: str | None = None

    def say(self, text: str) -> None:
        ids: list[str] = []
        echo_stream(self.client.stream_response(self.model, text, previous_response_id=self.previous,
                                                instructions=self.instructions, ids=ids))
        self.previous = ids[0] if ids else self.previous


@config_command(ChatConfig, name="chat",
                help="Chat with a model on a running OpenAI-compatible server. The conversation "
                     "is kept until you leave with Ctrl-D or Ctrl-C.")
def chat(config: ChatConfig) -> None:
    options = config.options
    with fatal_errors():
        client = Client(options)
        model = options.model_name or client.first_model()
        turns = (_ResponseTurns if options.api == "responses" else _ChatTurns)(client, model, options.system_prompt)
        if options.quick is not None:
            turns.say(options.quick)
            return
        click.echo(f"Using model: {model}")
        click.echo("Type a message; Ctrl-D or Ctrl-C leaves.")
        _converse(turns)


def _converse(turns: _ChatTurns | _ResponseTurns) -> None:
    """The interactive loop. A server error is shown and the turn dropped, so what is
    sent next holds only turns that got a reply."""
    while (message := read_line()) is not None:
        if not message.strip():
            continue
        try:
            turns.say(message)
        except ServerError as exc:
            click.echo(str(exc), err=True)
