"""Tensor parallelism end to end on this machine: two ranks give one rank's greedy tokens
(and transformers'), through the mp and the Ray executors, with split and replicated KV
heads, int4-packed weights, LoRA adapters (against transformers+peft) and structured
outputs; a model whose heads do not divide is refused before any process starts; a dead
worker is an error, not a hang. Every process a test starts is gone when it ends
(``no_process_left`` in conftest.py)."""

from __future__ import annotations

import json
import os
import signal

import jsonschema
import psutil
import pytest
import torch

from fw import LoRARequest, SamplingParams
from fw.errors import ConfigurationError, FwError
from fw.layers.attention import Attention
from fw.layers.packed import Int4Blocks
from fw.structured.params import StructuredOutputsParams
from fw_kernels import cpu
from tests.core.engine.conftest import PROMPTS, hf_greedy
from tests.core.lora.adapters import make_test_adapters, peft_greedy

MAX_TOKENS = 12
GREEDY = SamplingParams(max_tokens=MAX_TOKENS, min_tokens=MAX_TOKENS, temperature=0.0, logprobs=1)


def tokens(outputs) -> list[list[int]]:
    return [o.outputs[0].token_ids for o in outputs]


def sampled_logprobs(outputs) -> list[float]:
    return [step[token].logprob for o in outputs for token, step in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)]


def rank0_shard(llm):
    """Rank 0's part of the model, behind the engine's proxy."""
    return llm.engine.loaded.model.module


CASES = {
    "llama-mp": ("LlamaForCausalLM", {}, "mp"),
    "qwen3-mp": pytest.param("Qwen3ForCausalLM", {}, "mp", marks=pytest.mark.slow),
    "llama-1-kv-head-mp": pytest.param("LlamaForCausalLM", {"num_key_value_heads": 1}, "mp", marks=pytest.mark.slow),
    # Gemma 3: the embedding's scale, windowed and global layers, q/k and output norms
    "gemma3-mp": ("Gemma3ForCausalLM", {}, "mp"),
    "gemma2-mp": pytest.param("Gemma2ForCausalLM", {}, "mp", marks=pytest.mark.slow),
    "phi3-mp": pytest.param("Phi3ForCausalLM", {}, "mp", marks=pytest.mark.slow),
    "llama-ray": pytest.param("LlamaForCausalLM", {}, "ray", marks=pytest.mark.slow),
    "qwen3-ray": pytest.param("Qwen3ForCausalLM", {}, "ray", marks=pytest.mark.slow),
}


@pytest.mark.parametrize("architecture, overrides, backend", CASES.values(), ids=CASES.keys())
def test_two_ranks_give_one_ranks_greedy_tokens(architecture, overrides, backend, tiny_checkpoint_factory, tp_llm):
    path = tiny_checkpoint_factory(architecture, **overrides)  # 4 query heads, 2 KV heads unless overridden
    one = tp_llm(path).generate(PROMPTS, GREEDY, use_tqdm=False)
    assert tokens(one)[0] == hf_greedy(path, PROMPTS[0], MAX_TOKENS)  # one rank is transformers' model
    llm = tp_llm(path, tensor_parallel_size=2, distributed_executor_backend=backend)
    two = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert tokens(two) == tokens(one)
    assert sampled_logprobs(two) == pytest.approx(sampled_logprobs(one), abs=1e-4)  # sums in another order
    kv_heads = overrides.get("num_key_value_heads", 2)
    attention = next(m for m in rank0_shard(llm).modules() if isinstance(m, Attention))
    assert (attention.num_heads, attention.num_kv_heads) == (2, max(1, kv_heads // 2))  # split or replicated
    assert attention.kv_cache.shape[3] == attention.num_kv_heads  # rank 0's cache holds its KV heads only
    with pytest.raises(ConfigurationError, match="already holds a tensor-parallel model"):
        tp_llm(path, tensor_parallel_size=2)  # torch.distributed's groups are per process


def test_heads_that_do_not_divide_are_refused_before_any_process_starts(tiny_checkpoint_factory, tp_llm):
    path = tiny_checkpoint_factory("LlamaForCausalLM", hidden_size=48, num_attention_heads=3, num_key_value_heads=1)
    before = psutil.Process().children(recursive=True)
    with pytest.raises(ConfigurationError, match="the model's 3 attention heads do not divide by "
                                                 "--tensor-parallel-size 2"):
        tp_llm(path, tensor_parallel_size=2)
    assert psutil.Process().children(recursive=True) == before


@pytest.mark.parametrize("architecture", ["MixtralForCausalLM", "Qwen3MoeForCausalLM"])
def test_mixture_of_experts_models_are_refused_before_any_process_starts(architecture, tiny_checkpoint_factory,
                                                                        tp_llm):
    path = tiny_checkpoint_factory(architecture)
    before = psutil.Process().children(recursive=True)
    with pytest.raises(ConfigurationError, match="mixture-of-experts layers .* --tensor-parallel-size 1"):
        tp_llm(path, tensor_parallel_size=2)
    assert psutil.Process().children(recursive=True) == before


@pytest.mark.slow
@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels (int4) could not be built here")
def test_int4_packed_weights_are_split_across_ranks(tiny_llama, tp_llm):
    one = tp_llm(tiny_llama, quantization="int4").generate(PROMPTS, GREEDY, use_tqdm=False)
    llm = tp_llm(tiny_llama, quantization="int4", tensor_parallel_size=2)
    assert tokens(llm.generate(PROMPTS, GREEDY, use_tqdm=False)) == tokens(one)
    o_proj = rank0_shard(llm).model.layers[0].self_attn.o_proj
    assert isinstance(o_proj.packed.layouts[0], Int4Blocks) and o_proj.packed.shape == (64, 32)


@pytest.mark.slow
def test_lora_adapters_and_structured_outputs_under_tensor_parallelism(tiny_llama, tmp_path, tp_llm):
    paths = make_test_adapters(tiny_llama, tmp_path)
    adapters = {name: LoRARequest(name, i + 1, str(path)) for i, (name, path) in enumerate(paths.items())}
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    constrained = SamplingParams(max_tokens=20, temperature=0.0, structured_outputs=StructuredOutputsParams(
        json=schema, disable_any_whitespace=True))
    expected_json = tp_llm(tiny_llama).generate("Hello", constrained, use_tqdm=False)[0].outputs[0].text
    # one slot: alternating adapters make rank 0 refill it, and the worker must follow
    llm = tp_llm(tiny_llama, tensor_parallel_size=2, enable_lora=True, max_loras=1, max_parallel_loading_workers=1)
    for name in ("sql", "chat", "sql"):
        outputs = llm.generate(PROMPTS[:2], GREEDY, lora_request=adapters[name], use_tqdm=False)
        assert tokens(outputs) == [peft_greedy(tiny_llama, paths[name], p, MAX_TOKENS) for p in PROMPTS[:2]]
    mixed = llm.generate(PROMPTS[:2], GREEDY, lora_request=[adapters["chat"], None], use_tqdm=False)
    assert tokens(mixed)[0] == peft_greedy(tiny_llama, paths["chat"], PROMPTS[0], MAX_TOKENS)
    assert tokens(mixed)[1] == hf_greedy(tiny_llama, PROMPTS[1], MAX_TOKENS)
    text = llm.generate("Hello", constrained, use_tqdm=False)[0].outputs[0].text
    jsonschema.validate(json.loads(text), schema)
    assert text == expected_json


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_worker_that_dies_makes_the_next_step_fail_instead_of_hang(tiny_llama, tp_llm):
    llm = tp_llm(tiny_llama, tensor_parallel_size=2)
    workers = [p for p in psutil.Process().children(recursive=True)
               if any(name in " ".join(p.cmdline()) for name in ("fw::tp_rank1", "fw.distributed.worker"))]
    assert len(workers) == 1
    os.kill(workers[0].pid, signal.SIGKILL)
    os.waitid(os.P_PID, workers[0].pid, os.WEXITED | os.WNOWAIT)  # gone, and left for the engine to reap
    with pytest.raises(FwError, match=rf"tensor-parallel rank 1 \(process {workers[0].pid}\) exited with code -9"):
        llm.generate(PROMPTS[0], GREEDY, use_tqdm=False)


def test_two_ranks_with_an_int8_kv_cache_give_one_ranks_tokens(tiny_checkpoint_factory, tp_llm):
    """Each rank keeps its own KV heads' codes and scales (fw.attention.kv_format): rank 0
    tells the others the block count and block size of a cache laid out by kv head."""
    path = tiny_checkpoint_factory("LlamaForCausalLM")
    one = tp_llm(path, kv_cache_dtype="int8").generate(PROMPTS, GREEDY, use_tqdm=False)
    llm = tp_llm(path, tensor_parallel_size=2, kv_cache_dtype="int8")
    two = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert tokens(two) == tokens(one)
    assert sampled_logprobs(two) == pytest.approx(sampled_logprobs(one), abs=1e-3)
    attention = next(m for m in rank0_shard(llm).modules() if isinstance(m, Attention))
    assert attention.kv_cache.dtype == torch.int8 and attention.kv_cache.shape[2] == attention.num_kv_heads == 1
