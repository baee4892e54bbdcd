"""The detokenizer's text is transformers' text, whichever decode path it takes."""

from __future__ import annotations

import pytest

from fw.engine.detokenizer import IncrementalDetokenizer, TokenTexts
from tests.checkpoints import tiny_tokenizer

SAMPLES = ["Hello world, how are you?", "naïve café — ünïcödé ✓ 😀 text", "  leading spaces\nand lines\t"]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_fast_tokenizers_take_the_rust_decode(tokenizer):
    assert TokenTexts(tokenizer).decode != TokenTexts(tokenizer)._decode


@pytest.mark.parametrize("text", SAMPLES)
def test_rust_decode_matches_transformers(tokenizer, text):
    texts = TokenTexts(tokenizer)
    ids = tokenizer.encode(text, add_special_tokens=False) + [0, 1]  # special tokens too
    for end in range(1, len(ids) + 1):
        assert texts.decode(ids[:end]) == texts._decode(ids[:end])


@pytest.mark.parametrize("text", SAMPLES)
def test_streamed_text_is_the_whole_decode(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    detok = IncrementalDetokenizer(TokenTexts(tokenizer), [])
    pieces = [detok.add(i) for i in ids]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == tokenizer.decode(ids, skip_special_tokens=True)


class _Wrapped:
    """A tokenizer that is not transformers' fast wrapper: the generic path is kept."""

    def __init__(self, inner):
        self.inner = inner

    def decode(self, ids, **kwargs):
        return self.inner.decode(ids, **kwargs).upper()


def test_other_tokenizers_keep_their_own_decode(tokenizer):
    texts = TokenTexts(_Wrapped(tokenizer))
    ids = tokenizer.encode("hello", add_special_tokens=False)
    assert texts.decode(ids) == "HELLO"
