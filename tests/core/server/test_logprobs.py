"""The engine's logprobs in the OpenAI shapes, for what the fake engine of the HTTP tests
cannot give: a sampled token that is not the most likely one, tokens of several bytes,
-inf and NaN. Positions are made as the engine makes them: the sampler's
``logprob_entries`` over a real log-softmax, then the output processor's ``decoded_token``
(``TokenTexts.single``); what the shapes must hold comes from torch and the tokenizer."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fw.engine.detokenizer import TokenTexts
from fw.engine.outputs import Logprob
from fw.engine.sampler import logprob_entries
from fw.server.accumulate import PromptInfo, prompt_logprobs_json
from fw.server.logprobs import TokenText, chat_logprobs, completion_logprobs
from tests.core.server.fake_engine import make_tokenizer


def merged_tokenizer():
    """A byte-level BPE tokenizer like GPT-2's where "é" (two UTF-8 bytes) and " ." are single
    tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    merges = [("Ġ", "."), ("Ã", "©")]
    for left, right in merges:
        vocab[left + right] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>")


def engine_positions(tokenizer, raw: torch.Tensor, sampled: list[int], count: int) -> list[dict[int, Logprob]]:
    """Row ``i`` of ``raw`` (log-probabilities) as the engine reports it when ``sampled[i]``
    was drawn with ``count`` logprobs asked for."""
    texts = TokenTexts(tokenizer)
    positions = []
    for row, token in enumerate(sampled):
        position = logprob_entries(raw, row, token, count)
        for tid, logprob in position.items():
            logprob.decoded_token = texts.single(tid)
        positions.append(position)
    return positions


def random_logprobs(tokenizer, rows: int, seed: int) -> torch.Tensor:
    """Log-probabilities where the likely tokens are printable ASCII characters, each its own
    text (a lone byte of a multi-byte character decodes to U+FFFD, so they would share one)."""
    logits = torch.randn(rows, len(tokenizer), generator=torch.Generator().manual_seed(seed))
    printable = [tokenizer.decode([i]).isascii() and tokenizer.decode([i]).isprintable() for i in range(len(tokenizer))]
    logits[:, ~torch.tensor(printable)] -= 30
    return torch.log_softmax(logits, -1)


def test_chat_top_logprobs_are_the_most_likely_first_whatever_was_sampled():
    tokenizer = make_tokenizer()
    raw = random_logprobs(tokenizer, 4, seed=0)
    # a temperature draw: the sampled token is the 6th most likely, not among the top 3
    sampled = [int(row.argsort(descending=True)[5]) for row in raw]
    positions = engine_positions(tokenizer, raw, sampled, count=4)
    entries = chat_logprobs(sampled, positions, TokenText(tokenizer), top_n=3, as_ids=False)
    for entry, row, token in zip(entries, raw, sampled):
        text = tokenizer.decode([token])
        assert (entry.token, entry.bytes) == (text, list(text.encode("utf-8")))
        assert entry.logprob == pytest.approx(float(row[token]))
        best = row.topk(3)
        assert [t.token for t in entry.top_logprobs] == [tokenizer.decode([i]) for i in best.indices.tolist()]
        assert [t.logprob for t in entry.top_logprobs] == pytest.approx(best.values.tolist())
        assert [t.bytes for t in entry.top_logprobs] == [list(t.token.encode("utf-8")) for t in entry.top_logprobs]


def test_completion_top_logprobs_hold_the_sampled_token_and_the_most_likely_in_order():
    tokenizer = make_tokenizer()
    raw = random_logprobs(tokenizer, 3, seed=1)
    sampled = [int(row.argsort(descending=True)[4]) for row in raw]
    positions = engine_positions(tokenizer, raw, sampled, count=2)
    out = completion_logprobs(sampled, positions, TokenText(tokenizer), as_ids=False)
    for top, value, row, token in zip(out.top_logprobs, out.token_logprobs, raw, sampled):
        assert value == pytest.approx(float(row[token]))
        ranked = row.topk(2).indices.tolist() + [token]  # most likely first; the sampled one, 5th, last
        assert list(top) == [tokenizer.decode([i]) for i in ranked]
        assert list(top.values()) == pytest.approx([float(row[i]) for i in ranked])


def test_tokens_and_their_utf8_bytes_add_up_to_the_generated_text():
    """OpenAI documents ``bytes`` as the token's UTF-8 bytes, which combine into the text."""
    tokenizer = merged_tokenizer()
    ids = tokenizer.encode("café .", add_special_tokens=False)
    text = tokenizer.decode(ids)
    assert len(ids) == 5 and text == "café ."
    # each sampled token is the most likely one, so it is also the first alternative
    raw = torch.log_softmax(torch.nn.functional.one_hot(torch.tensor(ids), len(tokenizer)).float() * 5, -1)
    positions = engine_positions(tokenizer, raw, ids, count=1)
    entries = chat_logprobs(ids, positions, TokenText(tokenizer), top_n=1, as_ids=False)
    assert "".join(e.token for e in entries) == text
    assert bytes(b for e in entries for b in e.bytes).decode("utf-8") == text
    assert [e.top_logprobs[0].token for e in entries] == [e.token for e in entries]
    assert bytes(b for e in entries for b in e.top_logprobs[0].bytes).decode("utf-8") == text
    out = completion_logprobs(ids, positions, TokenText(tokenizer), as_ids=False)
    assert "".join(out.tokens) == text and out.text_offset == [0, 1, 2, 3, 4]


def test_minus_infinity_and_nan_become_vllms_minus_9999_in_every_shape():
    """JSON has no -inf or NaN: a client's strict parser rejects the whole response."""
    tokenizer = make_tokenizer()
    a, b, c = (tokenizer.encode(ch, add_special_tokens=False)[0] for ch in "abc")
    position = {a: Logprob(-math.inf, rank=3, decoded_token="a"), b: Logprob(-0.1, rank=1, decoded_token="b"),
                c: Logprob(math.nan, rank=2, decoded_token="c")}
    token_text = TokenText(tokenizer)
    (entry,) = chat_logprobs([a], [position], token_text, top_n=3, as_ids=False)
    assert entry.logprob == -9999.0
    assert [(t.token, t.logprob) for t in entry.top_logprobs] == [("b", -0.1), ("c", -9999.0), ("a", -9999.0)]
    out = completion_logprobs([a], [position], token_text, as_ids=False)
    assert out.token_logprobs == [-9999.0] and out.top_logprobs == [{"b": -0.1, "c": -9999.0, "a": -9999.0}]
    shaped = prompt_logprobs_json(PromptInfo([0, a], logprobs=[None, position]))
    assert shaped == [None, {str(a): {"logprob": -9999.0, "rank": 3, "decoded_token": "a"},
                             str(b): {"logprob": -0.1, "rank": 1, "decoded_token": "b"},
                             str(c): {"logprob": -9999.0, "rank": 2, "decoded_token": "c"}}]
    json.dumps([entry.model_dump(), out.model_dump(), shaped], allow_nan=False)
