"""Verification keeps exactly what the model would have produced: greedy keeps the
proposals up to the first the model disagrees with, and sampled verification (rejection
sampling against a point-mass proposal) emits tokens with the model's own distribution,
checked by a chi-square test on a tiny model's logits."""

from __future__ import annotations

import pytest
import torch
from fw import LLM, SamplingParams
from fw.engine.sampler import apply_top_k_top_p_min_p
from fw.engine.sampling_batch import SamplingBatch
from fw.speculative.verify import verify
from scipy.stats import chisquare

VOCAB = 448


def _metadata(params: SamplingParams, rows: int, vocab: int, generator=None):
    batch = SamplingBatch(rows, vocab)
    for row in range(rows):
        batch.add(f"r{row}", params, [1, 2, 3], [], generator if row == 0 else None, (2,))
    return batch.metadata([f"r{row}" for row in range(rows)])


def _rows_of_one_request(params: SamplingParams, rows: int, vocab: int, generator=None):
    """Sampling settings for ``rows`` logits rows that all belong to one request."""
    batch = SamplingBatch(1, vocab)
    batch.add("r", params, [1, 2, 3], [], generator, (2,))
    return batch.metadata(["r"] * rows)


def test_greedy_keeps_proposals_until_the_model_disagrees_then_adds_its_own():
    torch.manual_seed(1)
    logits = torch.randn(4, 50)
    best = logits.argmax(-1).tolist()
    proposals = [best[0], best[1], (best[2] + 1) % 50]  # the third guess is wrong
    meta = _rows_of_one_request(SamplingParams(temperature=0), 4, 50)
    [result] = verify(logits.clone(), meta, [(0, proposals)])
    assert result.tokens == best[:3]  # two accepted, then the model's own third token
    assert result.accepted == 2


def test_greedy_all_accepted_adds_the_bonus_token():
    torch.manual_seed(2)
    logits = torch.randn(3, 50)
    best = logits.argmax(-1).tolist()
    meta = _rows_of_one_request(SamplingParams(temperature=0), 3, 50)
    [result] = verify(logits.clone(), meta, [(0, best[:2])])
    assert result.tokens == best and result.accepted == 2


def test_groups_are_verified_independently():
    torch.manual_seed(3)
    logits = torch.randn(4, 50)
    best = logits.argmax(-1).tolist()
    meta = _metadata(SamplingParams(temperature=0), 4, 50)
    first, second, third = verify(logits.clone(), meta, [(0, [best[0]]), (2, []), (3, [])])
    assert (first.tokens, second.tokens, third.tokens) == ([best[0], best[1]], [best[2]], [best[3]])


@pytest.fixture(scope="module")
def model_logits(tiny_llama):
    """Two rows of a tiny model's next-token logits: after a prompt, and after its likeliest
    continuation (the rows a one-token proposal is verified on)."""
    llm = LLM(str(tiny_llama), dtype="float32", enable_prefix_caching=False, max_logprobs=-1)
    prompt = [5, 17, 42, 99, 7]
    first = llm.generate({"prompt_token_ids": prompt}, SamplingParams(max_tokens=1, temperature=0, logprobs=-1))
    entries = first[0].outputs[0].logprobs[0]
    row0 = torch.full((VOCAB,), -float("inf"))
    for token, entry in entries.items():
        row0[token] = entry.logprob
    top = int(row0.argmax())
    second = llm.generate({"prompt_token_ids": prompt + [top]},
                          SamplingParams(max_tokens=1, temperature=0, logprobs=-1))
    row1 = torch.full((VOCAB,), -float("inf"))
    for token, entry in second[0].outputs[0].logprobs[0].items():
        row1[token] = entry.logprob
    return torch.stack([row0, row1]), top


def _target(logits_row: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    meta = _metadata(params, 1, VOCAB)
    return apply_top_k_top_p_min_p(logits_row[None].clone(), meta).softmax(-1)[0]


@pytest.mark.parametrize("params", [SamplingParams(temperature=0.7, top_k=6),
                                    SamplingParams(temperature=1.3, top_p=0.6)],
                         ids=["top_k", "top_p"])
@pytest.mark.parametrize("guess", ["likely", "unlikely"])
def test_sampled_tokens_have_the_models_distribution(model_logits, params, guess):
    """Whether the guess is the model's favourite or a token it would rarely pick, the first
    emitted token follows the model's distribution, and so does the second when the guess
    was kept."""
    logits, top = model_logits
    target0 = _target(logits[0], params)
    proposal = top if guess == "likely" else int(target0.argsort(descending=True)[3])
    target1 = _target(logits[1], params)
    draws = 6000  # as many requests, each proposing the guess, verified in one batch
    batch = SamplingBatch(draws, VOCAB)
    for i in range(draws):
        batch.add(f"r{i}", params, [1, 2, 3], [], None, (2,))
    meta = batch.metadata([f"r{i // 2}" for i in range(2 * draws)])
    results = verify(logits.repeat(draws, 1), meta, [(2 * i, [proposal]) for i in range(draws)])
    first = torch.zeros(VOCAB)
    second = torch.zeros(VOCAB)
    for result in results:
        first[result.tokens[0]] += 1
        if result.tokens[0] == proposal and proposal == top:
            second[result.tokens[1]] += 1
    _assert_follows(first, target0)
    if second.sum() > 500:
        _assert_follows(second, target1)


def _assert_follows(counts: torch.Tensor, probs: torch.Tensor) -> None:
    support = probs > 0
    assert counts[~support].sum() == 0, "a token outside the model's support was emitted"
    observed = counts[support]
    expected = probs[support] / probs[support].sum() * observed.sum()
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3
