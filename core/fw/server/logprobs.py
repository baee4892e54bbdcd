"""Engine logprobs in each API's OpenAI shape.

Completions: parallel lists ``tokens`` / ``token_logprobs`` / ``top_logprobs`` (a dict per
position) / ``text_offset``. Chat: one entry per token with its ``bytes`` and a list of
``top_logprobs``. The engine gives, per position, ``{token_id: Logprob}`` with the sampled
token first and then the top-N alternatives, each with its rank (the sampler's
``logprob_entries`` makes every position): a position always holds its own token.
"""

from __future__ import annotations

import math
from typing import Any

from fw.engine.detokenizer import TokenTexts
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
    """Token id -> display text: the engine's text of the token alone (``TokenTexts.single``,
    what its output processor writes into each Logprob's ``decoded_token``), computed once
    per id. A token can have no Logprob (the first prompt token), so the text is made here,
    by the same code, for every token alike."""

    def __init__(self, tokenizer: Any):
        self._texts = TokenTexts(tokenizer) if tokenizer is not None else None
        #: special tokens (BOS ...) take no room in a returned text: the engine's text skips them
        self.special_ids = self._texts.special_ids if self._texts is not None else frozenset()

    def __call__(self, token_id: int, *, as_ids: bool) -> str:
        if as_ids or self._texts is None:  # no tokenizer (--skip-tokenizer-init): ids are all there is
            return f"token_id:{token_id}"
        return self._texts.single(token_id)

    def length(self, token_ids: list[int]) -> int:
        """How far ``token_ids`` move a text_offset: the length of their texts in the returned
        text, where special tokens take no room (and no tokenizer means no text)."""
        if self._texts is None:
            return 0
        return sum(len(self._texts.single(t)) for t in token_ids if t not in self.special_ids)


def _by_rank(position: dict[int, Logprob]) -> list[tuple[int, Logprob]]:
    """Most likely first: OpenAI's order of alternatives, whatever token was sampled."""
    return sorted(position.items(), key=lambda item: item[1].rank)


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
        out.tokens.append(token_text(token_id, as_ids=as_ids))
        out.text_offset.append(offset)
        offset += token_text.length([token_id])
        if position is None:
            out.token_logprobs.append(None)
            out.top_logprobs.append(None)
            continue
        out.token_logprobs.append(clamp_logprob(position[token_id].logprob))
        out.top_logprobs.append({
            token_text(tid, as_ids=as_ids): clamp_logprob(lp.logprob) for tid, lp in _by_rank(position)
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
        text = token_text(token_id, as_ids=as_ids)
        top = []
        for tid, lp in _by_rank(position)[:top_n]:
            alt = token_text(tid, as_ids=as_ids)
            top.append(ChatLogprobToken(token=alt, logprob=clamp_logprob(lp.logprob),
                                        bytes=list(alt.encode("utf-8", errors="replace"))))
        entries.append(ChatLogprobEntry(
            token=text, logprob=clamp_logprob(position[token_id].logprob),
            bytes=list(text.encode("utf-8", errors="replace")), top_logprobs=top,
        ))
    return entries
