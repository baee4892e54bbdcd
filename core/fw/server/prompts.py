"""Prompts to token ids, and the context-length check.

The server tokenizes (rather than the engine) so that it knows each prompt's length
before submitting: an over-long request is refused with both numbers, and usage, echo
and logging all see the same ids the engine runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from fw.errors import ContextLengthError, InvalidParameterError
from fw.server.context import ServerContext


@dataclass
class Prompt:
    text: str | None
    token_ids: list[int]


def encode(ctx: ServerContext, text: str, add_special_tokens: bool) -> list[int]:
    return list(ctx.require_tokenizer("prompt").encode(text, add_special_tokens=add_special_tokens))


def check_token_ids(ids: list[int], vocab_size: int, param: str) -> None:
    bad = next((t for t in ids if not 0 <= t < vocab_size), None)
    if bad is not None:
        raise InvalidParameterError(param, f"token id {bad} is outside the vocabulary (0..{vocab_size - 1})")


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
    prompts = []
    for item in items:
        if isinstance(item, str):
            prompts.append(Prompt(item, encode(ctx, item, add_special_tokens)))
        else:
            check_token_ids(item, ctx.model_info.vocab_size, "prompt")
            prompts.append(Prompt(None, list(item)))
        if not prompts[-1].token_ids:
            raise InvalidParameterError("prompt", "must not be empty")
    return prompts


def truncate(prompt: Prompt, keep: int | None) -> Prompt:
    """``truncate_prompt_tokens``: keep the last ``keep`` tokens."""
    if keep is None or len(prompt.token_ids) <= keep:
        return prompt
    return Prompt(None, prompt.token_ids[-keep:])


def resolve_max_tokens(requested: int | None, prompt_len: int, max_model_len: int, param: str) -> int:
    """The number of tokens to generate: the request's, or what is left of the context.
    Raises ContextLengthError naming both numbers when they do not fit."""
    if prompt_len >= max_model_len:
        raise ContextLengthError(
            "messages" if param == "max_completion_tokens" else "prompt",
            f"the prompt has {prompt_len} tokens, but this model's context length is "
            f"{max_model_len} tokens, which leaves no room to generate; shorten the prompt",
        )
    if requested is None:
        return max_model_len - prompt_len
    if requested < 1:
        raise InvalidParameterError(param, f"must be at least 1, got {requested}")
    if prompt_len + requested > max_model_len:
        raise ContextLengthError(
            param,
            f"the prompt ({prompt_len} tokens) plus {param} ({requested}) is "
            f"{prompt_len + requested} tokens, more than this model's context length of "
            f"{max_model_len} tokens; ask for at most {max_model_len - prompt_len} tokens "
            "or shorten the prompt",
        )
    return requested
