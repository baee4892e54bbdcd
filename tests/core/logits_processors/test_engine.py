"""Logits processors in the engine (offline ``LLM``, tiny float32 checkpoints): a request's
output follows the processor it asks for through ``extra_args``, the others are what the
engine gives without processors (alone or batched beside it), speculative decoding gives
what decoding one token at a time gives, and bad arguments are refused at admission."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from fw import LLM, SamplingParams
from fw.errors import InvalidParameterError
from fw.logits_processors import LogitsProcessor

PROMPTS = ["one two three four one two three four one two three", "the cat sat on the mat and the cat sat on the",
           "Hello, my name is"]
BUILTIN = "fw_builtins.logits_processors.target_token.TargetTokenLogitsProcessor"


class NoRepeat(LogitsProcessor):
    """Requests with ``no_repeat`` never sample the token they sampled last: a processor
    whose effect depends on each row's output so far (what speculation must get right)."""

    xargs = ("no_repeat",)

    def new_request(self, params, prompt_ids):
        return True if (params.extra_args or {}).get("no_repeat") else None

    def apply(self, logits, rows, states, output_ids):
        for row, output in zip(rows, output_ids):
            if output:
                logits[row, output[-1]] = float("-inf")


def _tokens(llm: LLM, prompts, params) -> list[list[int]]:
    params = params if isinstance(params, list) else [params] * len(prompts)
    return [list(o.outputs[0].token_ids) for o in llm.generate(prompts, params, use_tqdm=False)]


GREEDY = {"max_tokens": 12, "temperature": 0, "ignore_eos": True}


def test_the_target_token_follows_the_request_and_leaves_the_others_alone(llm_factory, tiny_llama):
    plain = _tokens(llm_factory(tiny_llama), PROMPTS, SamplingParams(**GREEDY))
    llm = llm_factory(tiny_llama, logits_processors=["target_token"])
    assert _tokens(llm, PROMPTS, SamplingParams(**GREEDY)) == plain  # no arguments: unchanged
    target = 7
    assert all(t != [target] * 12 for t in plain)
    mixed = [SamplingParams(**GREEDY), SamplingParams(**GREEDY, extra_args={"target_token": target}),
             SamplingParams(**GREEDY)]
    got = _tokens(llm, PROMPTS, mixed)
    assert got[1] == [target] * 12
    assert [got[0], got[2]] == [plain[0], plain[2]]  # batched beside it, bit for bit the same
    sampled = SamplingParams(max_tokens=12, temperature=1.0, seed=3, ignore_eos=True, extra_args={"target_token": 5})
    assert _tokens(llm, PROMPTS[:1], sampled) == [[5] * 12]


def test_a_request_may_name_a_processor_the_pattern_allows(llm_factory, tiny_llama):
    llm = llm_factory(tiny_llama, logits_processor_pattern=r"fw_builtins\.logits_processors\.")
    params = SamplingParams(**GREEDY, logits_processors=[BUILTIN], extra_args={"target_token": 11})
    assert _tokens(llm, PROMPTS[:2], [params, SamplingParams(**GREEDY)])[0] == [11] * 12
    with pytest.raises(InvalidParameterError, match="is not allowed by this server"):
        llm.generate(PROMPTS[:1], SamplingParams(**GREEDY, logits_processors=["tests.something.Else"]),
                     use_tqdm=False)
    with pytest.raises(InvalidParameterError, match="'target_token': no logits processor is enabled"):
        llm.generate(PROMPTS[:1], SamplingParams(**GREEDY, extra_args={"target_token": 1}), use_tqdm=False)


def test_bad_arguments_are_refused_at_admission_naming_vllm_xargs(llm_factory, tiny_llama):
    llm = llm_factory(tiny_llama, logits_processors=["target_token"])
    for xargs, reason in (({"target_token": 10**6}, "target_token must be a token id"),
                          ({"target": 1}, "no logits processor reads 'target'")):
        with pytest.raises(InvalidParameterError, match=reason) as info:
            llm.generate(PROMPTS[:1], SamplingParams(**GREEDY, extra_args=xargs), use_tqdm=False)
        assert info.value.param == "vllm_xargs"
    assert llm.engine.scheduler.num_waiting == 0 and not llm.engine.scheduler.requests
    plain = llm_factory(tiny_llama)
    with pytest.raises(InvalidParameterError, match="no logits processor is enabled"):
        plain.generate(PROMPTS[:1], SamplingParams(**GREEDY, extra_args={"target_token": 1}), use_tqdm=False)


def test_speculation_cannot_change_what_a_processor_gives(llm_factory, tiny_llama):
    """The verification path applies processors with each row's proposals before it as
    output, so greedy output under n-gram speculation equals plain decoding's."""
    processors = [f"{__name__}:NoRepeat", "target_token"]
    params = [SamplingParams(max_tokens=30, temperature=0, ignore_eos=True, extra_args={"no_repeat": True}),
              SamplingParams(max_tokens=30, temperature=0, ignore_eos=True),
              SamplingParams(max_tokens=30, temperature=0, ignore_eos=True, extra_args={"target_token": 9})]
    expected = _tokens(llm_factory(tiny_llama, logits_processors=processors), PROMPTS, params)
    assert all(a != b for a, b in zip(expected[0], expected[0][1:]))  # no token twice in a row
    assert expected[2] == [9] * 30
    llm = llm_factory(tiny_llama, logits_processors=processors,
                  speculative_config={"method": "ngram", "num_speculative_tokens": 4})
    before = llm.engine.stats().spec_num_drafts
    assert _tokens(llm, PROMPTS, params) == expected
    assert llm.engine.stats().spec_num_drafts > before  # it did speculate
    assert llm.engine.kv.pool.num_free_blocks == llm.engine.kv.num_blocks


class Spy(NoRepeat):
    """NoRepeat that records what each ``apply`` call is given."""

    seen: ClassVar[list] = []

    def apply(self, logits, rows, states, output_ids):
        Spy.seen.append((logits.shape[0], list(rows), logits.device, logits.dtype))
        super().apply(logits, rows, states, output_ids)


def test_a_processor_sees_only_its_rows_on_the_logits_device(tiny_llama, llm_factory):
    """``apply`` gets the step's whole logits and the rows of the requests that use it;
    offline, ``logits_processors`` takes the class itself, as vLLM's LLM does."""
    Spy.seen.clear()
    llm = llm_factory(tiny_llama, logits_processors=[Spy])
    _tokens(llm, PROMPTS, [SamplingParams(**GREEDY), SamplingParams(**GREEDY, extra_args={"no_repeat": 1}),
                           SamplingParams(**GREEDY)])
    seen = Spy.seen
    assert seen and all(len(rows) == 1 for _, rows, _, _ in seen)
    assert all(device == torch.device("cpu") and dtype == torch.float32 for _, _, device, dtype in seen)
    assert any(size == 3 and rows == [1] for size, rows, _, _ in seen)  # decoding beside two that do not use it


def test_a_class_defined_in_a_function_is_refused_with_the_reason(tiny_llama):
    class Local(NoRepeat):
        pass

    with pytest.raises(ValueError, match="define it at module level"):
        LLM(str(tiny_llama), dtype="float32", logits_processors=[Local])
