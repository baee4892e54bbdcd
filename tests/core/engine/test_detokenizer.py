"""The detokenizer's text is transformers' text, whichever decode path it takes."""

from __future__ import annotations

import copy
import functools

import pytest

from fw.engine.detokenizer import IncrementalDetokenizer, TokenTexts
from tests.checkpoints import CORPUS, tiny_tokenizer

SAMPLES = ["Hello world, how are you?", "naïve café — ünïcödé ✓ 😀 text", "  leading spaces\nand lines\t"]


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


@functools.lru_cache(maxsize=1)
def sentencepiece_tokenizer():
    """A tokenizer in sentencepiece's style (Llama, Mistral): a word's piece carries its
    space as "▁", which decoding drops at the start of a text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    core.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   clean_up_tokenization_spaces=False)


@pytest.mark.parametrize("prompt", ["France is", "The capital of France is",
                                    "Paris is a city on the river Seine, and the capital of France is"])
@pytest.mark.parametrize("bos", [False, True])
def test_the_first_output_word_keeps_its_space_after_the_prompt(prompt, bos):
    """Alone, "▁Paris" decodes to "Paris"; after the prompt it is " Paris", as in the
    decode of prompt and output together, whatever the prompt's length."""
    sp = sentencepiece_tokenizer()
    prompt_ids = ([sp.bos_token_id] if bos else []) + sp.encode(prompt, add_special_tokens=False)
    output_ids = sp.encode(prompt + " Paris is a city.", add_special_tokens=False)[len(prompt_ids) - bos:]
    want = sp.decode(prompt_ids + output_ids, skip_special_tokens=True)[len(sp.decode(prompt_ids, skip_special_tokens=True)):]
    assert want == " Paris is a city."
    detok = IncrementalDetokenizer(TokenTexts(sp), prompt_ids)
    assert "".join(detok.add(i) for i in output_ids) == want


def test_after_a_prompt_of_special_tokens_only_the_output_starts_as_its_text_would():
    """Special tokens are no context: after a lone "<s>" the output decodes as
    transformers decodes prompt and output without special tokens."""
    sp = sentencepiece_tokenizer()
    output_ids = sp.encode("Paris is", add_special_tokens=False)
    detok = IncrementalDetokenizer(TokenTexts(sp), [sp.bos_token_id])
    assert "".join(detok.add(i) for i in output_ids) == sp.decode([sp.bos_token_id] + output_ids,
                                                                 skip_special_tokens=True) == "Paris is"


class _SkipsSpecialByDefault:
    """A tokenizer outside transformers' fast wrapper whose decode leaves special tokens
    out unless told otherwise."""

    def __init__(self, inner):
        self.inner = inner
        self.all_special_ids = inner.all_special_ids
        self.calls = 0

    def decode(self, ids, skip_special_tokens=True, clean_up_tokenization_spaces=None):
        self.calls += 1
        return self.inner.decode(ids, skip_special_tokens=skip_special_tokens)


def test_a_special_tokens_own_text_is_its_text_whatever_the_tokenizers_default(tokenizer):
    """Logprobs' decoded_token of an end-of-sequence token is "<|im_end|>", as transformers'
    decode([id]) gives, also with a tokenizer that skips special tokens by default."""
    eos = tokenizer.eos_token_id
    assert TokenTexts(_SkipsSpecialByDefault(tokenizer)).single(eos) == tokenizer.decode([eos]) == "<|im_end|>"


def test_other_tokenizers_special_tokens_are_skipped_too(tokenizer):
    """A tokenizer outside transformers' wrapper names its special tokens by all_special_ids."""
    ids = special_mix(tokenizer)
    assert stream(_SkipsSpecialByDefault(tokenizer), ids) == tokenizer.decode(ids, skip_special_tokens=True)


def test_each_tokens_own_text_is_decoded_once(tokenizer):
    """Logprobs name up to 20 tokens per position: their texts are decoded once per
    tokenizer, not once per mention."""
    counting = _SkipsSpecialByDefault(tokenizer)
    texts = TokenTexts(counting)
    ids = tokenizer.encode("Hello world", add_special_tokens=False)
    assert [texts.single(i) for i in ids * 3] == [tokenizer.decode([i]) for i in ids] * 3
    assert counting.calls == len(set(ids))


def with_added_tokens():
    """The tiny tokenizer plus a special token "<think>" that is not among all_special_ids
    (as a reasoning model's markers are) and an ordinary added token "<tool>"."""
    from transformers import AddedToken

    tok = copy.deepcopy(tiny_tokenizer())
    tok.add_tokens([AddedToken("<think>", special=True), AddedToken("<tool>", special=False)])
    think, tool = tok.convert_tokens_to_ids(["<think>", "<tool>"])
    assert think not in tok.all_special_ids
    return tok, think, tool


def test_added_special_tokens_are_skipped_and_ordinary_added_tokens_kept_as_transformers_does():
    tok, think, tool = with_added_tokens()
    ids = tok.encode("Hello", add_special_tokens=False) + [think] + tok.encode(" world", add_special_tokens=False) + [tool]
    assert stream(tok, ids) == tok.decode(ids, skip_special_tokens=True) == "Hello world<tool>"


def test_a_parsers_marker_is_kept_as_its_literal_text_without_spaces():
    """A special token a parser needs (keep_special_ids) stays in the text, unspaced,
    even when other special tokens are skipped."""
    tok, think, _ = with_added_tokens()
    ids = [think] + tok.encode("Hello", add_special_tokens=False) + [think, tok.eos_token_id] + tok.encode(
        " world", add_special_tokens=False)
    got = stream(tok, ids, keep_special_ids=frozenset({think}))
    assert got == tok.decode([i for i in ids if i != tok.eos_token_id]) == "<think>Hello<think> world"


def slow_join(tokenizer, ids) -> str:
    """transformers' slow-tokenizer rule for spaces_between_special_tokens: the special
    tokens and the decoded runs of text between them, joined by single spaces."""
    parts, run = [], []
    for i in ids:
        if i in tokenizer.all_special_ids:
            parts += [tokenizer.decode(run)] if run else []
            parts.append(tokenizer.convert_ids_to_tokens(i))
            run = []
        else:
            run.append(i)
    parts += [tokenizer.decode(run)] if run else []
    return " ".join(parts)


@pytest.mark.parametrize("layout", ["S t S", "S S t t S S", "t S t S S t"])
def test_special_tokens_at_either_end_are_spaced_only_between_neighbours(tokenizer, layout):
    texts = iter([tokenizer.encode(w, add_special_tokens=False) for w in ("Hello", " world", "Bye", "again")])
    specials = iter([1, 2, 0, 1])
    ids = [i for part in layout.split() for i in (next(texts) if part == "t" else [next(specials)])]
    assert stream(tokenizer, ids, skip_special_tokens=False) == slow_join(tokenizer, ids)


def test_subclasses_that_change_decoding_keep_their_own_decode(tokenizer):
    """The quick decode is taken only for transformers' own wrapper: a subclass that
    overrides decode or _decode is asked itself."""
    from transformers import PreTrainedTokenizerFast

    class Decode(PreTrainedTokenizerFast):
        def decode(self, ids, **kwargs):
            return super().decode(ids, **kwargs).upper()

    class Underscore(PreTrainedTokenizerFast):
        def _decode(self, token_ids, **kwargs):
            return super()._decode(token_ids, **kwargs).upper()

    ids = tokenizer.encode("hello", add_special_tokens=False)
    for cls in (Decode, Underscore):
        sub = cls(tokenizer_object=tokenizer.backend_tokenizer)
        assert sub.decode(ids) == "HELLO"
        assert TokenTexts(sub).decode(ids) == "HELLO"


@pytest.mark.parametrize("options", [dict(skip_special_tokens=False, spaces_between_special_tokens=False),
                                     dict(keep_special_ids=frozenset({2}))])
def test_the_word_after_an_unspaced_special_token_keeps_its_space(options):
    """Unspaced, a special token's text is followed by the next word as transformers'
    decode writes it: "Hello</s> Paris", not "Hello</s>Paris"."""
    sp = sentencepiece_tokenizer()
    ids = sp.encode("Hello", add_special_tokens=False) + [sp.eos_token_id] + sp.encode("Paris is", add_special_tokens=False)
    assert stream(sp, ids, **options) == sp.decode(ids) == "Hello</s> Paris is"


def test_the_text_after_a_spaced_special_token_is_decoded_on_its_own():
    sp = sentencepiece_tokenizer()
    ids = sp.encode("Hello", add_special_tokens=False) + [sp.eos_token_id] + sp.encode("Paris is", add_special_tokens=False)
    assert stream(sp, ids, skip_special_tokens=False) == slow_join(sp, ids) == "Hello </s> Paris is"


def test_a_prompt_that_ends_inside_a_character_is_continued_after_that_character(tokenizer):
    """Prompt token ids may stop between the bytes of one character (an emoji here): the
    output is the rest of the whole decode after that character, never a replacement
    character and never text shifted by the prompt's unfinished bytes."""
    ids = tokenizer.encode("Once upon a time, a little robot 😀 smiled at the sun", add_special_tokens=False)
    full = tokenizer.decode(ids)
    after = full[full.index("😀") + 1:]
    inside = [k for k in range(1, len(ids)) if tokenizer.decode(ids[:k]).endswith("\ufffd")]
    assert len(inside) >= 2 and min(inside) > 5
    for k in inside:
        detok = IncrementalDetokenizer(TokenTexts(tokenizer), ids[:k])
        assert "".join(detok.add(i) for i in ids[k:]) == after
