"""The built-in target_token processor (vLLM's documented "dummy" example) on made-up
logits: the rows that ask keep only their target's logit, unchanged; every other row and
every other request is untouched; arguments are checked against the vocabulary."""

from __future__ import annotations

import pytest
import torch
from fw.engine.sampling_params import SamplingParams
from fw.errors import InvalidParameterError
from fw.logits_processors import LogitsProcessorContext
from fw.plugins import load

VOCAB = 50


@pytest.fixture
def processor():
    return load("logits_processor", "target_token")(LogitsProcessorContext(VOCAB, torch.device("cpu")))


def test_only_the_asking_rows_are_forced_to_their_target(processor):
    logits = torch.randn(5, VOCAB, generator=torch.Generator().manual_seed(0))
    before = logits.clone()
    states = [processor.new_request(SamplingParams(extra_args={"target_token": t}), [1]) for t in (3, 49)]
    processor.apply(logits, [1, 4], states, [[], [7, 8]])
    for row, target in ((1, 3), (4, 49)):
        assert logits[row, target] == before[row, target]
        assert torch.isinf(logits[row]).sum() == VOCAB - 1 and logits[row].argmax() == target
    assert torch.equal(logits[[0, 2, 3]], before[[0, 2, 3]])


def test_a_request_without_target_does_not_use_it(processor):
    assert processor.new_request(SamplingParams(), [1]) is None
    assert processor.new_request(SamplingParams(extra_args={}), [1]) is None


@pytest.mark.parametrize("bad", [VOCAB, -1, "3", 2.0, True, [3]])
def test_a_target_outside_the_vocabulary_is_refused_naming_vllm_xargs(processor, bad):
    with pytest.raises(InvalidParameterError, match=rf"target_token must be a token id in 0..{VOCAB - 1}") as info:
        processor.validate(SamplingParams(extra_args={"target_token": bad}))
    assert info.value.param == "vllm_xargs"
