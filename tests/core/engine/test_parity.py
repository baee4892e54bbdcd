"""Same weights -> same greedy tokens and logprobs as transformers, for every built-in
architecture and under every engine mechanism that could change them: batching of
ragged prompts, chunked prefill, preemption, prefix-cache hits and n > 1."""

from __future__ import annotations

import pytest
import torch

from fw import SamplingParams
from tests.core.engine.conftest import PROMPTS, _hf_model, assert_logprobs_match_transformers, greedy_tokens, hf_greedy

ARCHITECTURES = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"]
MAX_TOKENS = 24
# min_tokens masks EOS as transformers' min_new_tokens does, so both pick the same tokens.
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


def test_tiny_token_budget_chunks_prefill(checkpoint, expected, llm_factory):
    llm = llm_factory(checkpoint, max_num_batched_tokens=7, enable_prefix_caching=False)
    assert greedy_tokens(llm.generate(PROMPTS, GREEDY, use_tqdm=False)) == expected


def test_preemption_by_a_tiny_kv_cache(checkpoint, expected, llm_factory):
    # 12 blocks of 4 tokens: the five requests need ~50 blocks together.
    llm = llm_factory(checkpoint, block_size=8, num_gpu_blocks_override=12, enable_prefix_caching=False)
    assert greedy_tokens(llm.generate(PROMPTS, GREEDY, use_tqdm=False)) == expected
    assert llm.engine.scheduler.num_preemptions > 0
    assert llm.engine.kv.pool.num_free_blocks == 12


def test_prefix_cache_hits_give_the_same_tokens(checkpoint, expected, llm_factory):
    llm = llm_factory(checkpoint, block_size=8)
    first = greedy_tokens(llm.generate(PROMPTS, GREEDY, use_tqdm=False))
    hits_before = llm.engine.kv.prefix_hits
    second = greedy_tokens(llm.generate(PROMPTS, GREEDY, use_tqdm=False))
    assert first == second == expected
    assert llm.engine.kv.prefix_hits > hits_before


def test_n_samples_share_the_prompt(checkpoint, expected, llm_factory):
    llm = llm_factory(checkpoint, block_size=8)
    outputs = llm.generate(PROMPTS[:2], SamplingParams(n=2, max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0),
                           use_tqdm=False)
    for output, want in zip(outputs, expected[:2]):
        assert [c.index for c in output.outputs] == [0, 1]
        assert [c.token_ids for c in output.outputs] == [want, want]


def test_logprobs_match_transformers(checkpoint, llm_factory):
    assert_logprobs_match_transformers(llm_factory(checkpoint), checkpoint, PROMPTS[:3])


def test_prompt_logprobs_match_transformers(checkpoint, llm_factory):
    llm = llm_factory(checkpoint, max_num_batched_tokens=5)  # also across prefill chunks
    prompt = PROMPTS[2]
    output = llm.generate([prompt], SamplingParams(max_tokens=1, prompt_logprobs=2), use_tqdm=False)[0]
    ids = output.prompt_token_ids
    with torch.no_grad():
        ref = _hf_model(str(checkpoint))(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    assert output.prompt_logprobs[0] is None
    assert len(output.prompt_logprobs) == len(ids)
    for position in range(1, len(ids)):
        entry = output.prompt_logprobs[position]
        assert entry[ids[position]].logprob == pytest.approx(float(ref[position - 1, ids[position]]), abs=1e-3)


def test_plain_torch_path_matches_too(checkpoint, expected, llm_factory, monkeypatch):
    """Where fw's CPU kernels cannot be built, the torch path gives the same tokens."""
    from fw_kernels import cpu

    monkeypatch.setattr(cpu, "available", lambda: False)
    llm = llm_factory(checkpoint, block_size=8)
    assert greedy_tokens(llm.generate(PROMPTS, GREEDY, use_tqdm=False)) == expected
