"""Engine logprobs in each API's OpenAI shape.

Completions: parallel lists ``tokens`` / ``token_logprobs`` / ``top_logprobs`` (a dict per
position) / ``text_offset``. Chat: one entry per token with its ``bytes`` and a list of
``top_logprobs``. The engine gives, per position, ``{token_id: Logprob}`` with the sampled
token first and then the top-N alternatives: a position always holds its own token.
"""

from __future__ import annotations

import math
from typing import Any

from fw.engine.outputs import Logprob
from fw.server.protocol.chat import ChatLogprobEntry, ChatLogprobToken
from fw.server.protocol.completions import CompletionLogprobs

#: JSON has no -inf; OpenAI clients expect a number
MIN_LOGPROB = -9999.0


def clamp_logprob(value: float) -> float:
    """``value`` as a number JSON can carry: -inf (a masked token) and NaN (a broken model)
    become MIN_LOGPROB, as in vLLM."""
    return max(value, MIN_LOGPROB) if not math.isnan(value) else MIN_LOGPROB


class TokenText:
    """Token id -> display text, cached (the same ids recur in every response)."""

    def __init__(self, tokenizer: Any, limit: int = 65536):
        self.tokenizer = tokenizer
        self.limit = limit
        self._cache: dict[int, str] = {}
        #: special tokens (BOS ...) take no room in a returned text
        self.special_ids = set(getattr(tokenizer, "all_special_ids", None) or ())

    def __call__(self, token_id: int, logprob: Logprob | None = None, *, as_ids: bool = False) -> str:
        if as_ids or self.tokenizer is None:  # no tokenizer (--skip-tokenizer-init): ids are all there is
            return f"token_id:{token_id}"
        if logprob is not None and logprob.decoded_token is not None:
            return logprob.decoded_token
        text = self._cache.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id])
            if len(self._cache) < self.limit:
                self._cache[token_id] = text
        return text


def _by_rank(position: dict[int, Logprob]) -> list[tuple[int, Logprob]]:
    return sorted(position.items(), key=lambda item: item[1].rank if item[1].rank is not None else math.inf)


def completion_logprobs(
    token_ids: list[int],
    positions: list[dict[int, Logprob] | None],
    token_text: TokenText,
    *,
    as_ids: bool,
    offset: int = 0,
) -> CompletionLogprobs:
    """``positions[i]`` belongs to ``token_ids[i]``; None (the first prompt token) has no
    logprob. ``offset`` is where the first token's text starts in the choice's text."""
    out = CompletionLogprobs()
    for token_id, position in zip(token_ids, positions):
        chosen = position[token_id] if position is not None else None
        text = token_text(token_id, chosen, as_ids=as_ids)
        out.tokens.append(text)
        out.text_offset.append(offset)
        if token_id not in token_text.special_ids:
            offset += len(token_text(token_id, chosen))
        if position is None:
            out.token_logprobs.append(None)
            out.top_logprobs.append(None)
            continue
        out.token_logprobs.append(clamp_logprob(chosen.logprob))
        out.top_logprobs.append({
            token_text(tid, lp, as_ids=as_ids): clamp_logprob(lp.logprob) for tid, lp in _by_rank(position)
        })
    return out


def merge_completion_logprobs(first: CompletionLogprobs, second: CompletionLogprobs) -> CompletionLogprobs:
    return CompletionLogprobs(
        text_offset=first.text_offset + second.text_offset,
        token_logprobs=first.token_logprobs + second.token_logprobs,
        tokens=first.tokens + second.tokens,
        top_logprobs=first.top_logprobs + second.top_logprobs,
    )


def chat_logprobs(
    token_ids: list[int],
    positions: list[dict[int, Logprob]],
    token_text: TokenText,
    *,
    top_n: int,
    as_ids: bool,
) -> list[ChatLogprobEntry]:
    entries = []
    for token_id, position in zip(token_ids, positions):
        chosen = position[token_id]
        text = token_text(token_id, chosen, as_ids=as_ids)
        top = []
        for tid, lp in _by_rank(position)[:top_n]:
            alt = token_text(tid, lp, as_ids=as_ids)
            top.append(ChatLogprobToken(token=alt, logprob=clamp_logprob(lp.logprob),
                                        bytes=list(alt.encode("utf-8", errors="replace"))))
        entries.append(ChatLogprobEntry(
            token=text, logprob=clamp_logprob(chosen.logprob),
            bytes=list(text.encode("utf-8", errors="replace")), top_logprobs=top,
        ))
    return entries
