"""The inputs of the pooling APIs as token ids.

``input`` comes in OpenAI's four shapes (a string, strings, token ids, lists of token
ids); text is tokenized in one batch, off the event loop. With ``truncate_prompt_tokens``
text is cut by the tokenizer, which keeps its special tokens (a BERT tokenizer keeps the
start of the text, as sentence-transformers does); token ids keep their last N (the
engine's admission does that). Text pairs (a cross-encoder's query and document) are
tokenized together, with the token types that tell the model which is which. The rules on
the resulting prompts (length, vocabulary) are the engine's admission's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fw.errors import InvalidParameterError
from fw.server.context import ServerContext
from fw.server.preprocess import check_prompt_chars


@dataclass
class PoolingPrompt:
    text: str | None
    token_ids: list[int]
    #: a pair's segments (0: first text, 1: second), for models that read them
    token_type_ids: list[int] | None = None


def input_items(value: Any, param: str = "input") -> list[str | list[int]]:
    """The four shapes as a list of items (a string, or a list of token ids, each)."""
    if isinstance(value, str):
        items: list = [value]
    elif isinstance(value, list) and value and all(isinstance(t, int) for t in value):
        items = [value]
    else:
        items = list(value)
    if not items:
        raise InvalidParameterError(param, "must not be empty")
    for index, item in enumerate(items):
        if (isinstance(item, str) and not item) or (isinstance(item, list) and not item):
            where = param if len(items) == 1 else f"{param}[{index}]"
            raise InvalidParameterError(param, f"{where} is empty; every input needs at least one token")
    return items


def _truncation(ctx: ServerContext, truncate: int | None) -> dict[str, Any]:
    if truncate is None:
        return {}
    return {"truncation": True, "max_length": ctx.model_info.max_model_len if truncate == -1 else truncate}


async def input_prompts(ctx: ServerContext, value: Any, *, add_special_tokens: bool = True,
                        truncate: int | None = None, param: str = "input") -> list[PoolingPrompt]:
    """One prompt per input item, in order."""
    items = input_items(value, param)
    texts = [item for item in items if isinstance(item, str)]
    encoded: list[list[int]] = []
    if texts:
        tokenizer = ctx.require_tokenizer(param)
        options = dict(add_special_tokens=add_special_tokens, **_truncation(ctx, truncate))
        if truncate is None:
            for text in texts:
                check_prompt_chars(ctx, text, param)
        encoded = await ctx.preprocess.run(lambda: tokenizer(texts, **options)["input_ids"])
    found = iter(encoded)
    return [PoolingPrompt(item, list(next(found))) if isinstance(item, str) else PoolingPrompt(None, list(item))
            for item in items]


async def pair_prompts(ctx: ServerContext, pairs: list[tuple[str, str]], *, truncate: int | None = None,
                       param: str = "text_1") -> list[PoolingPrompt]:
    """One prompt per (first, second) text pair, tokenized as a pair with its token types."""
    tokenizer = ctx.require_tokenizer(param)
    options = _truncation(ctx, truncate)
    if options:
        options["truncation"] = "longest_first"
    if truncate is None:
        for first, second in pairs:
            check_prompt_chars(ctx, first + second, param)
    encoded = await ctx.preprocess.run(lambda: tokenizer([a for a, _ in pairs], [b for _, b in pairs], **options))
    types = encoded.get("token_type_ids")
    return [PoolingPrompt(None, list(ids), list(types[i]) if types is not None else None)
            for i, ids in enumerate(encoded["input_ids"])]
