"""The sampler and speculative verification run on the logits' device: every tensor they
make is made there (run here with the default device set to ``meta``, a tensor made
without naming the logits' device lands on meta and the step fails), the metadata moves
to the logits' device, and the results are exactly those of the host run, feature by
feature."""

from __future__ import annotations

import pytest
import torch

from fw.engine.sampler import sample
from fw.engine.sampling_batch import SamplingBatch
from fw.engine.sampling_params import SamplingParams
from fw.speculative.verify import verify

VOCAB = 64

FEATURES = {
    "greedy": dict(temperature=0.0),
    "random": dict(temperature=0.9),
    "seeded": dict(temperature=1.0, seed=11),
    "truncated": dict(temperature=0.8, top_k=5, top_p=0.8, min_p=0.05, seed=3),
    "penalised": dict(temperature=0.0, repetition_penalty=1.3, presence_penalty=0.4, frequency_penalty=0.2),
    "biased": dict(temperature=0.0, logit_bias={7: 30.0}),
    "allowed": dict(temperature=0.0, allowed_token_ids=[3, 9, 40]),
    "bad words and min_tokens": dict(temperature=0.0, min_tokens=5),
    "logprobs": dict(temperature=0.7, logprobs=3, seed=5),
}


def _batch() -> tuple[SamplingBatch, list[str]]:
    batch = SamplingBatch(capacity=4, vocab_size=VOCAB)
    ids = []
    for i, (name, settings) in enumerate(FEATURES.items()):
        params = SamplingParams(**settings)
        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        batch.add(name, params, [1, 2, 3, 7], [3, 9], generator, eos_token_ids=(0, 1))
        ids.append(name)
    return batch, ids


def _logits(rows: int) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(1)) * 4


def _sample_once(on_meta_default: bool):
    batch, ids = _batch()
    torch.manual_seed(0)  # the unseeded rows' draws
    meta = batch.metadata(ids).to(torch.device("cpu"))
    logits = _logits(len(ids))
    if on_meta_default:
        with torch.device("meta"):
            return sample(logits, meta, set())
    return sample(logits, meta, set())


def test_sampling_makes_every_tensor_on_the_logits_device_and_matches_the_host_run():
    host, device = _sample_once(False), _sample_once(True)
    assert device.token_ids == host.token_ids
    assert device.logprobs == host.logprobs
    assert device.sampled_logprobs == host.sampled_logprobs
    assert device.no_token == host.no_token


@pytest.mark.parametrize("greedy", [True, False])
def test_verification_runs_on_the_logits_device_with_the_host_results(greedy):
    def run(on_meta_default: bool):
        batch = SamplingBatch(capacity=2, vocab_size=VOCAB)
        settings = dict(temperature=0.0) if greedy else dict(temperature=0.9, seed=4)
        params = SamplingParams(logprobs=2, **settings)
        generator = torch.Generator().manual_seed(4) if not greedy else None
        batch.add("spec", params, [1, 2], [], generator)
        batch.add("plain", SamplingParams(temperature=0.0), [1, 2], [])
        logits = _logits(4)
        proposals = logits[:3].argmax(-1).tolist()[:2]  # the model's own guesses: accepted if greedy
        meta = batch.metadata(["spec", "spec", "spec", "plain"])
        groups = [(0, proposals), (3, [])]
        if on_meta_default:
            with torch.device("meta"):
                return verify(logits, meta, groups)
        return verify(logits, meta, groups)

    host, device = run(False), run(True)
    assert [(v.tokens, v.accepted, v.logprobs, v.sampled_logprobs) for v in device] == \
           [(v.tokens, v.accepted, v.logprobs, v.sampled_logprobs) for v in host]


def test_a_step_sampling_the_same_requests_reuses_their_metadata_unless_it_changes_per_token():
    batch = SamplingBatch(capacity=4, vocab_size=VOCAB)
    batch.add("a", SamplingParams(temperature=0.0), [1], [])
    batch.add("b", SamplingParams(temperature=0.5, top_k=3), [1], [])
    first = batch.metadata(["a", "b"])
    batch.append("a", 5)
    assert batch.metadata(["a", "b"]) is first
    assert batch.metadata(["b", "a"]) is not first  # another order: other rows
    batch.add("c", SamplingParams(frequency_penalty=1.0), [1], [])
    penalised = batch.metadata(["a", "c"])
    batch.append("c", 5)
    again = batch.metadata(["a", "c"])
    assert again is not penalised and again.penalties.counts[0, 5] == 1  # the counts moved on
    batch.remove("b")
    batch.add("b", SamplingParams(temperature=1.0), [1], [])  # a slot reused by another request
    assert batch.metadata(["a", "b"]).greedy_rows == [True, False]
