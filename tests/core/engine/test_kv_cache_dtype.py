"""A quantized KV cache (--kv-cache-dtype int8|fp8, --calculate-kv-scales) end to end on a
tiny model: its logprobs stay close to transformers' (the unquantized reference); the CPU
kernels' path gives what the plain-torch path over the dequantized cache gives; one answer
per prompt whether served cold, from the prefix cache, in a batch, in prefill chunks or
after preemption; LoRA adapters answer as transformers+peft; the fused decode step gives the
layer-by-layer results; the cache holds about twice the tokens at the same memory; and what
fw cannot do is refused in one line."""

from __future__ import annotations

import pytest
import torch

from fw import LLM, SamplingParams
from fw.errors import ConfigurationError
from fw_kernels import cpu
from tests.core.engine.conftest import PROMPTS, hf_logprobs
from tests.core.engine.test_batch_invariance import PROMPTS as LONG_PROMPTS

FORMATS = {"int8": {"kv_cache_dtype": "int8"}, "fp8": {"kv_cache_dtype": "fp8"},
           "fp8-scales": {"kv_cache_dtype": "fp8", "calculate_kv_scales": True}}
GREEDY = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True, logprobs=0)
COMMON = dict(max_model_len=256, kv_cache_memory_bytes=8 << 20)


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_factory):
    """head_dim 64: the kernels' vector path, as real models take it."""
    return tiny_checkpoint_factory("LlamaForCausalLM", hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
                                   head_dim=64, intermediate_size=256)


def _answers(outputs):
    return [[(t, step[t].logprob) for t, step in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)]
            for o in outputs]


@pytest.mark.parametrize("name", FORMATS)
def test_logprobs_stay_close_to_transformers(checkpoint, name):
    llm = LLM(str(checkpoint), dtype="float32", **COMMON, **FORMATS[name])
    for prompt, output in zip(PROMPTS, llm.generate(PROMPTS, GREEDY, use_tqdm=False)):
        tokens = output.outputs[0].token_ids
        expected = hf_logprobs(checkpoint, prompt, tokens)
        ours = torch.tensor([step[t].logprob for t, step in zip(tokens, output.outputs[0].logprobs)])
        theirs = expected[torch.arange(len(tokens)), torch.tensor(tokens)]
        torch.testing.assert_close(ours, theirs, atol=0.02, rtol=0)
        # the greedy pick is transformers' best token or within the KV error of it
        assert (expected.max(-1).values - theirs).max() < 0.02


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
@pytest.mark.parametrize("name", ["int8", "fp8-scales"])
def test_kernels_compute_the_torch_path_over_the_dequantized_cache(checkpoint, name, monkeypatch):
    from fw_builtins.attention import torch_backend

    llm = LLM(str(checkpoint), dtype="bfloat16", **COMMON, **FORMATS[name])
    fast = _answers(llm.generate(PROMPTS, GREEDY, use_tqdm=False))

    class NoKernels:  # the backend's view of fw_kernels.cpu: nothing is built
        supports = staticmethod(lambda *tensors: False)

    monkeypatch.setattr(torch_backend, "cpu", NoKernels)
    llm.engine.runner.fused_decode = None
    plain = _answers(llm.generate(PROMPTS, GREEDY, use_tqdm=False))
    for a, b in zip(fast, plain):
        assert [t for t, _ in a] == [t for t, _ in b]
        torch.testing.assert_close(torch.tensor([lp for _, lp in a]), torch.tensor([lp for _, lp in b]),
                                   atol=0.03, rtol=0)


def test_int8_one_answer_however_served(checkpoint):
    """Cold, again over the cached prefix, in a batch of 16 and in chunks of 16 tokens: the
    same tokens and logprob bits, as tests/core/engine/test_batch_invariance.py asks of an
    unquantized cache (a token's codes and scale depend on that token's K/V alone)."""
    params = SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True, logprobs=0)
    common = dict(dtype="bfloat16", kv_cache_dtype="int8", **COMMON)
    cached_llm = LLM(str(checkpoint), enable_prefix_caching=True, **common)
    prompts = LONG_PROMPTS[:8]
    cold = [cached_llm.generate([p], params, use_tqdm=False)[0] for p in prompts]
    cached = [cached_llm.generate([p], params, use_tqdm=False)[0] for p in prompts]
    assert all(o.num_cached_tokens >= 16 for o in cached)
    del cached_llm
    batched = LLM(str(checkpoint), enable_prefix_caching=False, **common).generate(LONG_PROMPTS, params,
                                                                                   use_tqdm=False)[:8]
    chunked = LLM(str(checkpoint), enable_prefix_caching=False, max_num_batched_tokens=16, **common).generate(
        LONG_PROMPTS, params, use_tqdm=False)[:8]
    expected = _answers(cold)
    for way, outputs in (("cached", cached), ("batched", batched), ("chunked", chunked)):
        assert _answers(outputs) == expected, way


def test_int8_preemption_and_prefix_sharing_keep_the_answers(checkpoint):
    params = SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)
    prompts = LONG_PROMPTS[:6]
    roomy = LLM(str(checkpoint), dtype="float32", kv_cache_dtype="int8", **COMMON)
    expected = [o.outputs[0].token_ids for o in roomy.generate(prompts, params, use_tqdm=False)]
    del roomy
    tight = LLM(str(checkpoint), dtype="float32", kv_cache_dtype="int8", max_model_len=256, block_size=16,
                num_gpu_blocks_override=16)
    outputs = tight.generate(prompts + prompts[:2], params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outputs] == expected + expected[:2]
    assert tight.engine.scheduler.num_preemptions > 0
    assert tight.engine.kv.pool.num_free_blocks == 16


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
@pytest.mark.parametrize("name", ["int8", "fp8"])
def test_fused_decode_gives_the_layer_by_layer_results(checkpoint, name):
    llm = LLM(str(checkpoint), dtype="bfloat16", **COMMON, **FORMATS[name])
    assert llm.engine.runner.fused_decode is not None, "the fused decoder must take a quantized cache"
    fused = _answers(llm.generate(PROMPTS, GREEDY, use_tqdm=False))
    llm.engine.runner.fused_decode = None
    assert _answers(llm.generate(PROMPTS, GREEDY, use_tqdm=False)) == fused


def test_a_quantized_cache_holds_more_tokens_at_the_same_memory(checkpoint, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="fw.engine"):
        bf16 = LLM(str(checkpoint), dtype="bfloat16", **COMMON)
        int8 = LLM(str(checkpoint), dtype="bfloat16", kv_cache_dtype="int8", **COMMON)
    tokens = [llm.engine.kv.num_blocks * llm.engine.kv.block_size for llm in (bf16, int8)]
    # per token and head: 64 bf16 values (128 bytes) against 64 codes and a 4-byte scale
    assert tokens[1] / tokens[0] == pytest.approx(128 / 68, rel=0.01)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("KV cache (int8")]
    assert lines and f"= {tokens[1]} tokens" in lines[0]


def test_bfloat16_cache_of_a_float32_model_is_refused_in_one_line(checkpoint):
    with pytest.raises(ConfigurationError) as info:
        LLM(str(checkpoint), dtype="float32", kv_cache_dtype="bfloat16", **COMMON)
    message = str(info.value)
    assert message.startswith("--kv-cache-dtype bfloat16:") and "\n" not in message


def test_a_backend_that_cannot_read_the_format_is_refused_in_one_line():
    """A plugin backend that does not declare ``supports_kv_format`` keeps unquantized caches:
    asking it for int8 is a start-up error naming the option, not a cache it would misread."""
    from types import SimpleNamespace

    from fw.attention.backend import AttentionBackend
    from fw.attention.kv_format import KVCacheFormat
    from fw.layers.attention import Attention

    class PlainBackend(AttentionBackend):
        name = "plain"

        def forward(self, query, key, value, kv_cache, metadata):
            raise NotImplementedError

    layer = Attention(4, 16, 0.25, 2, SimpleNamespace(attention_backend=PlainBackend))
    layer.set_kv_format(KVCacheFormat())
    with pytest.raises(ConfigurationError) as info:
        layer.set_kv_format(KVCacheFormat("int8", True))
    message = str(info.value)
    assert message.startswith("--kv-cache-dtype: the plain attention backend") and "\n" not in message


def test_lora_requests_over_an_int8_cache(tiny_llama, tmp_path):
    """Adapters change the keys and values a request writes, and the adapter is part of the
    prefix-cache key: with an int8 cache each adapter's requests still answer as
    transformers+peft does (same tokens, logprobs within the cache's error), and a
    request without the adapter shares no cached block with them."""
    from fw import LoRARequest
    from tests.core.lora.adapters import make_test_adapters, peft_greedy

    paths = make_test_adapters(tiny_llama, tmp_path)
    llm = LLM(str(tiny_llama), dtype="float32", kv_cache_dtype="int8", enable_lora=True, max_loras=2, **COMMON)
    for i, (name, path) in enumerate(paths.items()):
        outputs = llm.generate(PROMPTS[:2], GREEDY, lora_request=LoRARequest(name, i + 1, str(path)), use_tqdm=False)
        assert [o.outputs[0].token_ids for o in outputs] == [peft_greedy(tiny_llama, path, p, 12) for p in PROMPTS[:2]]
    long_prompt = PROMPTS[2]  # several full blocks
    llm.generate(long_prompt, GREEDY, lora_request=LoRARequest("sql", 1, str(paths["sql"])), use_tqdm=False)
    first, again = (llm.generate(long_prompt, GREEDY, use_tqdm=False)[0] for _ in range(2))
    assert first.num_cached_tokens == 0 and again.num_cached_tokens >= 16
