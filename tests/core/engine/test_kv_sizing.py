"""A KV cache too small for one request of --max-model-len tokens is caught at start-up:
an error naming the numbers when --max-model-len was given, else the context length is
lowered to what the cache holds, with a warning that says so."""

from __future__ import annotations

import logging

import pytest

from fw import LLM, SamplingParams
from fw.engine.model_builder import ConfigurationError

SMALL_CACHE = {"block_size": 16, "num_gpu_blocks_override": 4}  # 64 tokens


def test_an_explicit_max_model_len_the_cache_cannot_hold_fails_at_start(tiny_llama):
    with pytest.raises(ConfigurationError) as info:
        LLM(str(tiny_llama), dtype="float32", max_model_len=256, **SMALL_CACHE)
    message = str(info.value)
    assert message.startswith("--max-model-len 256: the KV cache holds 64 tokens (4 blocks of 16")
    assert "at most 64" in message and "--kv-cache-memory-bytes" in message


def test_the_model_s_own_context_length_is_lowered_with_a_warning(tiny_llama, caplog):
    with caplog.at_level(logging.WARNING, logger="fw.engine"):
        llm = LLM(str(tiny_llama), dtype="float32", **SMALL_CACHE)
    assert llm.engine.max_model_len == 64 and llm.engine.model_info().max_model_len == 64
    (warning,) = [r.getMessage() for r in caplog.records if "KV cache holds" in r.getMessage()]
    assert "context length of 512 tokens" in warning and "--max-model-len 64" in warning
    # a request that leaves max_tokens unset fills what is left of the (lowered) context
    (output,) = llm.generate(["Hello"], SamplingParams(max_tokens=None, ignore_eos=True), use_tqdm=False)
    assert len(output.prompt_token_ids) + len(output.outputs[0].token_ids) == 64


def test_a_cache_that_holds_the_context_changes_nothing(tiny_llama, caplog):
    with caplog.at_level(logging.WARNING, logger="fw.engine"):
        llm = LLM(str(tiny_llama), dtype="float32", max_model_len=64, **SMALL_CACHE)
    assert llm.engine.max_model_len == 64
    assert not [r for r in caplog.records if "KV cache holds" in r.getMessage()]
