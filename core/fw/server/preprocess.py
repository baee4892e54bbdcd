"""A request's prompts made ready for the engine without letting one request starve the
others.

* The character pre-check: no token decodes to more than ``longest_token_chars``
  characters, so a text longer than ``max_model_len`` times that cannot fit the context
  whatever its tokens are. It is refused with the numbers before it is tokenized (a
  10 MB prompt used to be tokenized in full, 1.7 M tokens, to learn it did not fit).
  ``truncate_prompt_tokens`` asks for a long text to be cut, so it skips the pre-check;
  the body limit still bounds it.
* Rendering chat templates and tokenizing run on the ``PreprocessPool``.
* The sequence cap: a request's prompts times ``n`` are the sequences it asks the engine
  to run; more than --max-num-seqs (what one engine step can hold) is refused, so a
  660-byte body can no longer ask for 12,800 sequences.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from fw.errors import ContextLengthError, InvalidParameterError
from fw.server.chat_prompt import render_messages

if TYPE_CHECKING:
    from fw.server.context import ServerContext


def longest_token_chars(tokenizer: Any) -> int:
    """The most characters any single token (added and special ones included) decodes to
    (1 without a tokenizer, --skip-tokenizer-init: text is refused anyway)."""
    if tokenizer is None:
        return 1
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return max(map(len, texts), default=1) or 1


def check_prompt_chars(ctx: "ServerContext", text: str, param: str) -> None:
    limit = ctx.max_prompt_chars
    if len(text) > limit:
        info = ctx.model_info
        raise ContextLengthError(
            param, f"the prompt has {len(text)} characters; this model's context length is "
                   f"{info.max_model_len} tokens and no token is longer than {limit // info.max_model_len} "
                   f"characters, so at most {limit} characters can fit; shorten the prompt")


def _encode(tokenizer: Any, text: str, add_special_tokens: bool) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=add_special_tokens))


async def tokenize(ctx: "ServerContext", text: str, add_special_tokens: bool, *, param: str = "prompt",
                   truncate: int | None = None) -> list[int]:
    """``text``'s token ids, tokenized on the pool after the character pre-check."""
    tokenizer = ctx.require_tokenizer(param)
    if truncate is None:
        check_prompt_chars(ctx, text, param)
    return await ctx.preprocess.run(_encode, tokenizer, text, add_special_tokens)


async def render(ctx: "ServerContext", fields: Any, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> str:
    """``render_messages`` on the pool (a template is Python code over client input)."""
    return await ctx.preprocess.run(partial(render_messages, ctx, fields, messages, *args, **kwargs))


def count_prompts(prompt: str | list) -> int:
    """How many prompts a completions ``prompt`` holds (its four shapes), before any work."""
    if isinstance(prompt, str) or (prompt and all(isinstance(t, int) for t in prompt)):
        return 1
    return len(prompt)


def check_sequences(ctx: "ServerContext", prompts: int, n: int) -> None:
    cap = ctx.config.scheduler.max_num_seqs
    if prompts * n > cap:
        shape = f"{prompts} prompts x n={n}" if prompts > 1 else f"n={n}"
        raise InvalidParameterError(
            "n" if n > 1 else "prompt",
            f"{shape} asks for {prompts * n} sequences; a request may ask for at most {cap} (--max-num-seqs)")
