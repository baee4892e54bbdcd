"""Prompts to token ids.

The server tokenizes what it rendered (chat templates) or was given, so the ids it logs
and submits are the ones the engine runs. Every rule on a prompt (its length against the
context, ids inside the vocabulary, truncation) is the engine's admission step's; the
server only refuses, before tokenizing, a text too long for any tokenization to fit
(``fw.server.preprocess``), and tokenizes off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from fw.errors import InvalidParameterError
from fw.server.context import ServerContext
from fw.server.preprocess import tokenize


@dataclass
class Prompt:
    text: str | None
    token_ids: list[int]


async def completion_prompts(ctx: ServerContext, prompt: str | list, add_special_tokens: bool, *,
                             truncate: int | None = None) -> list[Prompt]:
    """The completions API's four prompt shapes, as one Prompt each."""
    if isinstance(prompt, str):
        items: list = [prompt]
    elif prompt and all(isinstance(t, int) for t in prompt):
        items = [prompt]
    else:
        items = list(prompt)
    if not items:
        raise InvalidParameterError("prompt", "must not be empty")
    prompts = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            param = "prompt" if len(items) == 1 else f"prompt[{index}]"
            prompts.append(Prompt(item, await tokenize(ctx, item, add_special_tokens, param=param, truncate=truncate)))
        else:
            prompts.append(Prompt(None, list(item)))
    return prompts
