"""The sampler on tensors alone: penalties and truncation agree with transformers' logits
processors on the same logits, and the per-request state (``SamplingBatch``) follows
requests as they join, sample and leave."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    MinPLogitsWarper, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
    TopPLogitsWarper,
)

from fw.engine.sampler import apply_penalties, apply_top_k_top_p_min_p, sample
from fw.engine.sampling_batch import SamplingBatch
from fw.engine.sampling_params import SamplingParams

VOCAB = 50


def logits(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 3


def batch_of(*requests: tuple[SamplingParams, list[int], list[int]], generators=None) -> SamplingBatch:
    batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
    for i, (params, prompt, output) in enumerate(requests):
        batch.add(str(i), params, prompt, output, (generators or {}).get(i), eos_token_ids=(0,))
    return batch


def kept(values: torch.Tensor) -> list[set[int]]:
    return [set(torch.nonzero(row > float("-inf")).flatten().tolist()) for row in values]


def test_repetition_penalty_is_transformers_over_prompt_and_output():
    prompt, output = [3, 4, 5, 5], [7, 3, 9]
    batch = batch_of((SamplingParams(repetition_penalty=1.7), prompt, output),
                     (SamplingParams(), [3, 4], []))
    raw = logits(2)
    ours = apply_penalties(raw.clone(), batch.metadata(["0", "1"]).penalties)
    theirs = RepetitionPenaltyLogitsProcessor(1.7)(torch.tensor([prompt + output]), raw[:1].clone())
    assert torch.equal(ours[0], theirs[0])
    assert torch.equal(ours[1], raw[1])  # a row without penalties is untouched


def test_presence_and_frequency_penalties_count_the_output_only():
    prompt, output = [3, 4], [7, 7, 9, 3]
    batch = batch_of((SamplingParams(presence_penalty=0.5, frequency_penalty=0.25), prompt, output))
    raw = logits(1)
    ours = apply_penalties(raw.clone(), batch.metadata(["0"]).penalties)
    expected = raw.clone()
    for token, count in {7: 2, 9: 1, 3: 1}.items():  # OpenAI's definition
        expected[0, token] -= 0.25 * count + 0.5
    torch.testing.assert_close(ours, expected)
    batch.append("0", 9)
    again = apply_penalties(raw.clone(), batch.metadata(["0"]).penalties)
    torch.testing.assert_close(again[0, 9], raw[0, 9] - 0.25 * 2 - 0.5)


@pytest.mark.parametrize("settings,warpers", [
    ({"temperature": 0.7, "top_k": 5}, [TemperatureLogitsWarper(0.7), TopKLogitsWarper(5)]),
    ({"temperature": 1.3, "top_p": 0.6}, [TemperatureLogitsWarper(1.3), TopPLogitsWarper(0.6)]),
    ({"temperature": 1.0, "min_p": 0.2}, [MinPLogitsWarper(0.2)]),
    ({"temperature": 0.9, "min_p": 0.05, "top_k": 9, "top_p": 0.8},
     [TemperatureLogitsWarper(0.9), MinPLogitsWarper(0.05), TopKLogitsWarper(9), TopPLogitsWarper(0.8)]),
])
def test_truncation_keeps_the_tokens_transformers_keeps(settings, warpers):
    raw = logits(4, seed=3)
    batch = batch_of(*[(SamplingParams(**settings), [1], []) for _ in range(4)])
    ours = apply_top_k_top_p_min_p(raw.clone(), batch.metadata(["0", "1", "2", "3"]))
    theirs = raw.clone()
    for warper in warpers:
        theirs = warper(None, theirs)
    assert kept(ours) == kept(theirs)


def test_greedy_rows_take_the_argmax_beside_random_rows():
    raw = logits(3, seed=4)
    batch = batch_of((SamplingParams(temperature=0.0), [1], []), (SamplingParams(temperature=1.0), [1], []),
                     (SamplingParams(temperature=0.0), [1], []))
    result = sample(raw.clone(), batch.metadata(["0", "1", "2"]))
    assert [result.token_ids[0], result.token_ids[2]] == raw[[0, 2]].argmax(-1).tolist()


def test_a_seeded_row_draws_the_same_whatever_its_neighbours():
    raw = logits(3, seed=5)

    def draw(position: int, rows: int) -> int:
        requests = [(SamplingParams(temperature=1.0), [1], []) for _ in range(rows)]
        requests[position] = (SamplingParams(temperature=1.0, seed=7), [1], [])
        generator = torch.Generator().manual_seed(7)
        batch = batch_of(*requests, generators={position: generator})
        row_logits = raw[[2] * rows].clone()
        return sample(row_logits, batch.metadata([str(i) for i in range(rows)])).token_ids[position]

    assert draw(0, 1) == draw(2, 3) == draw(1, 2)


def test_bias_allowed_tokens_and_eos_before_min_tokens():
    raw = logits(3, seed=6)
    raw[:, 0] = 100.0  # EOS would win everywhere
    batch = batch_of((SamplingParams(temperature=0.0, logit_bias={11: 200.0}), [1], []),
                     (SamplingParams(temperature=0.0, allowed_token_ids=[20, 21]), [1], []),
                     (SamplingParams(temperature=0.0, min_tokens=2), [1], [5]))
    meta = batch.metadata(["0", "1", "2"])
    tokens = sample(raw.clone(), meta).token_ids
    assert tokens[0] == 11 and tokens[1] in (20, 21) and tokens[2] != 0
    batch.append("2", 6)  # two output tokens: EOS allowed again
    assert sample(raw[2:].clone(), batch.metadata(["2"])).token_ids == [0]


def test_bad_words_ban_their_last_token_after_their_prefix():
    raw = torch.zeros(1, VOCAB)
    raw[0, 9] = 10.0
    params = SamplingParams(temperature=0.0)
    params._bad_words_token_ids = [[4, 9]]
    batch = batch_of((params, [1], [3]))
    assert sample(raw.clone(), batch.metadata(["0"])).token_ids == [9]  # the output does not end with 4
    batch.append("0", 4)
    assert sample(raw.clone(), batch.metadata(["0"])).token_ids != [9]


def test_logprobs_are_of_the_raw_distribution_with_ranks():
    raw = logits(1, seed=8)
    batch = batch_of((SamplingParams(temperature=0.0, logprobs=2, logit_bias={13: 50.0}), [1], []))
    result = sample(raw.clone(), batch.metadata(["0"]))
    expected = raw[0].log_softmax(-1)
    entries = result.logprobs[0]
    assert result.token_ids == [13] and entries[13].logprob == pytest.approx(float(expected[13]))
    assert entries[13].rank == int((expected > expected[13]).sum()) + 1
    top = expected.topk(2).indices.tolist()
    assert [entries[t].rank for t in top] == [1, 2]


def test_state_follows_requests_and_features_cost_only_where_used():
    batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
    batch.add("plain", SamplingParams(temperature=0.0), [1, 2], [])
    meta = batch.metadata(["plain"])
    assert meta.top_p is None and meta.top_k is None and meta.penalties is None and meta.generators is None
    batch.add("penalised", SamplingParams(frequency_penalty=1.0, top_p=0.5), [1], [])
    batch.add("third", SamplingParams(), [1], [])  # beyond the first capacity: the batch grows
    meta = batch.metadata(["penalised", "plain"])
    assert meta.top_p.tolist() == [0.5, 1.0] and meta.penalties.rows.tolist() == [0]
    batch.remove("penalised")
    assert "penalised" not in batch and len(batch) == 2
    batch.add("reused", SamplingParams(top_k=3), [1], [])
    assert batch.metadata(["reused"]).penalties is None  # a freed slot keeps nothing of its last request
    batch.remove("unknown")  # ignored
