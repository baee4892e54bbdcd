"""The engine end to end on the Triton attention backend (under the interpreter): the
same greedy tokens as the torch backend, through chunked prefill over cached context
and prefix-cache hits."""

from __future__ import annotations

import pytest

from fw import LLM, SamplingParams

PROMPTS = ["The capital of France is", "Once upon a time there was a little robot who"]


def test_triton_backend_gives_the_torch_backends_tokens(tiny_llama):
    params = SamplingParams(max_tokens=6, min_tokens=6, temperature=0.0)
    options = dict(dtype="float32", block_size=8, max_num_batched_tokens=8)
    torch_llm = LLM(str(tiny_llama), attention_backend="torch", **options)
    triton_llm = LLM(str(tiny_llama), attention_backend="triton", **options)
    assert triton_llm.engine.loaded.attention_backend == "triton"
    expected = [o.outputs[0].token_ids for o in torch_llm.generate(PROMPTS, params, use_tqdm=False)]
    for _ in range(2):  # the second round hits the prefix cache
        got = [o.outputs[0].token_ids for o in triton_llm.generate(PROMPTS, params, use_tqdm=False)]
        assert got == expected
    assert triton_llm.engine.kv.prefix_hits > 0


@pytest.mark.parametrize("architecture", ["Gemma2ForCausalLM", "Gemma3ForCausalLM", "Qwen2MoeForCausalLM"])
def test_the_other_architectures_on_triton_give_the_torch_backends_tokens(architecture, tiny_checkpoint_factory):
    """Gemma's per-layer windows, soft caps and scale, and experts, reach the Triton
    kernels as they reach the torch backend."""
    path = tiny_checkpoint_factory(architecture)
    params = SamplingParams(max_tokens=6, min_tokens=6, temperature=0.0)
    options = dict(dtype="float32", block_size=8, max_num_batched_tokens=16)
    expected = [o.outputs[0].token_ids for o in LLM(str(path), attention_backend="torch", **options)
                .generate(PROMPTS, params, use_tqdm=False)]
    triton_llm = LLM(str(path), attention_backend="triton", **options)
    assert [o.outputs[0].token_ids for o in triton_llm.generate(PROMPTS, params, use_tqdm=False)] == expected
