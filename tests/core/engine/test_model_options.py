"""Engine options of vLLM's ModelConfig and CacheConfig: --hf-config-path,
--disable-sliding-window, --gpu-memory-utilization, --prefix-caching-hash-algo."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch

from fw import LLM, SamplingParams
from fw.engine import kv_sizing
from fw.engine.kv_cache_manager import KVCacheManager
from fw.layers.attention import Attention

GREEDY = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)


def build(path, **options):
    return LLM(str(path), dtype="float32", kv_cache_memory_bytes=2**22, **options)


def test_hf_config_path_replaces_the_models_config(tiny_llama, tmp_path):
    config = json.loads((tiny_llama / "config.json").read_text())
    config["max_position_embeddings"] = 128
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert build(tiny_llama, hf_config_path=str(tmp_path)).engine.max_model_len == 128
    assert build(tiny_llama).engine.max_model_len == 512


def windows(llm):
    return {m.impl.sliding_window for m in llm.engine.runner.model.modules() if isinstance(m, Attention)}


def test_disable_sliding_window_runs_full_attention_within_the_window(tiny_checkpoint_factory):
    mistral = tiny_checkpoint_factory("MistralForCausalLM", sliding_window=32)
    windowed = build(mistral)
    assert windows(windowed) == {32} and windowed.engine.max_model_len == 512
    full = build(mistral, disable_sliding_window=True)
    assert windows(full) == {None} and full.engine.max_model_len == 32
    with pytest.raises(Exception, match="exceeds the model's context of 32 tokens .its sliding window"):
        build(mistral, disable_sliding_window=True, max_model_len=64)


def test_gpu_memory_utilization_on_cuda_is_the_share_fw_may_fill(monkeypatch):
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (60 * gib, 100 * gib))
    # 40 GiB are in use (the weights, other processes): 0.5 of 100 leaves 10 for the KV cache
    assert kv_sizing._available_memory(torch.device("cuda"), 0.5) == 10 * gib
    assert kv_sizing._available_memory(torch.device("cuda"), None) == 50 * gib  # 0.9 by default
    assert kv_sizing._available_memory(torch.device("cuda"), 0.3) == 0


def test_gpu_memory_utilization_on_a_cpu_is_taken_with_a_notice(tiny_llama, caplog):
    caplog.set_level(logging.INFO, logger="fw.engine")
    LLM(str(tiny_llama), dtype="float32", gpu_memory_utilization=0.5, max_num_seqs=2)
    assert any("--gpu-memory-utilization applies to GPU memory; on a CPU the KV cache is sized by "
               "--kv-cache-memory-bytes" in r.getMessage() for r in caplog.records)


def test_sha256_block_keys_still_hit_the_prefix_cache(tiny_llama):
    manager = KVCacheManager(8, 16, hash_algo="sha256")
    assert len(manager._hash((None, None, (1, 2, 3)))) == 32
    llm = build(tiny_llama, prefix_caching_hash_algo="sha256", block_size=16)
    prompt = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    first = llm.generate([prompt], GREEDY, use_tqdm=False)[0].outputs[0].token_ids
    again = llm.generate([prompt], GREEDY, use_tqdm=False)[0]
    assert again.outputs[0].token_ids == first and again.num_cached_tokens > 0
