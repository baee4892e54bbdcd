"""Prompts to token ids.

The server tokenizes what it rendered (chat templates) or was given, so the ids it logs
and submits are the ones the engine runs. Every rule on a prompt (its length against the
context, ids inside the vocabulary, truncation) is the engine's admission step's.
"""

from __future__ import annotations

from dataclasses import dataclass

from fw.errors import InvalidParameterError
from fw.server.context import ServerContext


@dataclass
class Prompt:
    text: str | None
    token_ids: list[int]


def encode(ctx: ServerContext, text: str, add_special_tokens: bool) -> list[int]:
    return list(ctx.require_tokenizer("prompt").encode(text, add_special_tokens=add_special_tokens))


def completion_prompts(ctx: ServerContext, prompt: str | list, add_special_tokens: bool) -> list[Prompt]:
    """The completions API's four prompt shapes, as one Prompt each."""
    if isinstance(prompt, str):
        items: list = [prompt]
    elif prompt and all(isinstance(t, int) for t in prompt):
        items = [prompt]
    else:
        items = list(prompt)
    if not items:
        raise InvalidParameterError("prompt", "must not be empty")
    return [Prompt(item, encode(ctx, item, add_special_tokens)) if isinstance(item, str) else Prompt(None, list(item))
            for item in items]
