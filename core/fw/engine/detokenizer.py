"""Incremental detokenization: text grows token by token and never splits a multi-byte
character.

Each new token is decoded together with a few tokens before it (the window), and only
the text that is complete — not ending in a replacement character — is released. Special
tokens are skipped (``skip_special_tokens``) unless a parser declared them as markers it
needs; markers are emitted as their literal text. Special tokens a user asked to see
(``skip_special_tokens=False``) are separated by a space from their neighbours when
``spaces_between_special_tokens`` (the slow-tokenizer convention).
"""

from __future__ import annotations

from typing import Any, Callable

#: prompt tokens decoded ahead of the first output token, for tokenizers whose pieces
#: decode differently at the start of a text (sentencepiece's leading space)
PROMPT_CONTEXT = 5


def _rust_decode(tokenizer: Any) -> Callable[[list[int]], str] | None:
    """The `tokenizers` library's own decode, when ``tokenizer`` is transformers' unmodified
    wrapper around it: the same text without the wrapper's argument handling, a quarter of
    the time (two decodes per token per step: ~0.25 ms of a batch-32 step)."""
    try:
        from tokenizers import Tokenizer
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:
        return None
    backend = getattr(tokenizer, "_tokenizer", None)
    cls = type(tokenizer)
    if (not isinstance(backend, Tokenizer) or cls.decode is not PreTrainedTokenizerBase.decode
            or cls._decode is not TokenizersBackend._decode):
        return None
    return lambda ids: backend.decode(ids, skip_special_tokens=False)


class TokenTexts:
    """Per-tokenizer facts shared by all requests: special ids and single-token texts."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.special_ids = frozenset(getattr(tokenizer, "all_special_ids", ()) or ())
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        self.special_ids |= {i for i, tok in added.items() if getattr(tok, "special", False)}
        self._single: dict[int, str] = {}
        self.decode = _rust_decode(tokenizer) or self._decode

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def single(self, token_id: int) -> str:
        """The text of one token alone (for logprobs' decoded_token)."""
        text = self._single.get(token_id)
        if text is None:
            text = self._single[token_id] = self.decode([token_id])
        return text

    def token_string(self, token_id: int) -> str:
        return self.tokenizer.convert_ids_to_tokens(token_id)


class IncrementalDetokenizer:
    def __init__(self, texts: TokenTexts, prompt_token_ids: list[int], *, skip_special_tokens: bool = True,
                 spaces_between_special_tokens: bool = True, keep_special_ids: frozenset[int] = frozenset()):
        self.texts = texts
        self.skip_special = skip_special_tokens
        self.spaces = spaces_between_special_tokens
        self.keep = keep_special_ids
        context = [t for t in prompt_token_ids[-PROMPT_CONTEXT:] if t not in texts.special_ids]
        self.window: list[int] = context
        self.read = len(context)
        self.text = ""
        self._after_special = False

    def add(self, token_id: int) -> str:
        """Feed one token; returns the text it completed (possibly empty)."""
        if token_id in self.keep:
            return self._emit_special(token_id, spaced=False)
        if token_id in self.texts.special_ids:
            return "" if self.skip_special else self._emit_special(token_id, spaced=self.spaces)
        self.window.append(token_id)
        prefix_text = self.texts.decode(self.window[:self.read])
        full_text = self.texts.decode(self.window)
        if len(full_text) <= len(prefix_text) or full_text.endswith("\ufffd"):
            return ""
        delta = full_text[len(prefix_text):]
        # Keep the window short: everything before `read` is settled text.
        self.window = self.window[self.read:]
        self.read = len(self.window)
        if self._after_special and self.spaces:
            delta = " " + delta
        self._after_special = False
        self.text += delta
        return delta

    def _emit_special(self, token_id: int, spaced: bool) -> str:
        delta = self.texts.token_string(token_id)
        if spaced and self.text:
            delta = " " + delta
        # Spaced, the text after it is decoded on its own (the slow tokenizers' rule);
        # unspaced, in the context of the text before it, as a whole decode does (the
        # next word keeps sentencepiece's leading space). Unfinished bytes are dropped.
        self.window = [] if spaced else self.window[:self.read]
        self.read = len(self.window)
        self._after_special = spaced
        self.text += delta
        return delta
