"""The architectures beyond the Llama family (Gemma 2, Gemma 3, Phi-3, Mixtral, Qwen2-MoE,
Qwen3-MoE) against transformers on tiny random checkpoints made here (tests/checkpoints.py
sets what makes each one itself: sliding windows beside global layers, soft caps, the
attention scale, LongRoPE with a partial rotary share, routed experts beside dense MLPs,
a shared expert). Same weights, float32: the same greedy tokens, logprobs within 1e-3,
through a ragged batch, chunked prefill and prefix-cache hits."""

from __future__ import annotations

import pytest

from fw import SamplingParams
from tests.core.engine.conftest import PROMPTS, assert_logprobs_match_transformers, greedy_tokens, hf_greedy

ARCHITECTURES = ["Gemma2ForCausalLM", "Gemma3ForCausalLM", "Phi3ForCausalLM", "MixtralForCausalLM",
                 "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"]
MAX_TOKENS = 16
GREEDY = SamplingParams(max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0)


@pytest.fixture(scope="module", params=ARCHITECTURES)
def checkpoint(request, tiny_checkpoint_factory):
    return tiny_checkpoint_factory(request.param)


@pytest.fixture(scope="module")
def expected(checkpoint):
    return [hf_greedy(checkpoint, p, MAX_TOKENS) for p in PROMPTS]


def test_ragged_batch_matches_transformers(checkpoint, expected, llm_factory):
    llm = llm_factory(checkpoint)
    assert greedy_tokens(llm.generate(PROMPTS, GREEDY, use_tqdm=False)) == expected


def test_logprobs_match_transformers(checkpoint, llm_factory):
    assert_logprobs_match_transformers(llm_factory(checkpoint), checkpoint, PROMPTS[:3])


def test_chunked_prefill_and_prefix_hits_give_the_same_tokens(checkpoint, expected, llm_factory):
    llm = llm_factory(checkpoint, max_num_batched_tokens=7, block_size=8)
    for _ in range(2):  # the second round hits the prefix cache
        assert greedy_tokens(llm.generate(PROMPTS, GREEDY, use_tqdm=False)) == expected
    assert llm.engine.kv.prefix_hits > 0
