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


def special_mix(tokenizer) -> list[int]:
    """Text, a special token, text, two special tokens, text."""
    words = [tokenizer.encode(w, add_special_tokens=False) for w in ("Hello world", " again", " and done")]
    return words[0] + [1] + words[1] + [2, 1] + words[2]


def stream(tokenizer, ids, **options) -> str:
    detok = IncrementalDetokenizer(TokenTexts(tokenizer), [], **options)
    return "".join(detok.add(i) for i in ids)


@pytest.mark.parametrize("skip", [True, False])
def test_text_around_special_tokens_is_transformers_text(tokenizer, skip):
    ids = special_mix(tokenizer)
    got = stream(tokenizer, ids, skip_special_tokens=skip, spaces_between_special_tokens=False)
    assert got == tokenizer.decode(ids, skip_special_tokens=skip)


def test_spaces_between_special_tokens(tokenizer):
    """The slow tokenizers' convention (vLLM's default): a space each side of a special token."""
    ids = special_mix(tokenizer)
    assert stream(tokenizer, ids, skip_special_tokens=False) == (
        "Hello world <|im_start|>  again <|im_end|> <|im_start|>  and done")


class _CleansUpByDefault:
    """A tokenizer outside transformers' fast wrapper (TokenTexts takes its generic path)
    whose decode cleans up spaces unless told not to, as transformers' slow tokenizers
    with ``clean_up_tokenization_spaces=True`` do."""

    def __init__(self, inner):
        self.inner = inner

    def decode(self, ids, skip_special_tokens=False, clean_up_tokenization_spaces=None):
        text = self.inner.decode(ids, skip_special_tokens=skip_special_tokens)
        cleanup = clean_up_tokenization_spaces is None or clean_up_tokenization_spaces
        return self.inner.clean_up_tokenization(text) if cleanup else text


def test_streamed_text_is_the_raw_text_even_where_decode_would_clean_it_up(tokenizer):
    text = "Hello , world . Bye !"
    ids = tokenizer.encode(text, add_special_tokens=False)
    cleaning = _CleansUpByDefault(tokenizer)
    assert cleaning.decode(ids) == "Hello, world. Bye!"
    detok = IncrementalDetokenizer(TokenTexts(cleaning), [])
    assert "".join(detok.add(i) for i in ids) == text
