"""TritonAttentionBackend: the engine-facing wrapper, against the torch twins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from fw import plugins
from fw_builtins.attention import triton_backend
from fw_builtins.attention.triton_backend import TritonAttentionBackend
from fw_kernels import reference
from tests.kernels.paged import assert_close, make_batch, poisoned_like


def _forbidden(name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} should not run for this batch")
    return fail


def _forward_and_expected(batch, backend):
    """Run the backend on a cache missing this step's tokens; return its output and cache,
    and what the twins make of the same inputs."""
    kv_cache = torch.stack([batch.key_cache, batch.value_cache])
    expected_cache = kv_cache.clone()
    reference.write_kv(batch.key, batch.value, expected_cache[0], expected_cache[1], batch.slot_mapping)
    expected = reference.paged_attention_prefill(
        batch.query, expected_cache[0], expected_cache[1], batch.block_table, batch.query_start_loc,
        batch.seq_lens, backend.scale, sliding_window=backend.sliding_window, soft_cap=backend.logits_soft_cap)
    out = backend.forward(batch.query, batch.key, batch.value, kv_cache, batch.metadata())
    return out, kv_cache, expected, expected_cache


@pytest.mark.parametrize("sliding_window,soft_cap", [(None, None), (6, 3.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_forward_on_a_mixed_batch(dtype, sliding_window, soft_cap, monkeypatch):
    # decoding sequences, a fresh prompt, and a chunk over a cached prefix, in one step
    batch = make_batch([18, 1, 33, 12, 40], [1, 1, 7, 12, 1], num_kv_heads=2, group=3, head_size=16,
                       dtype=dtype, write_new=False)
    monkeypatch.setattr(triton_backend, "paged_attention_decode", _forbidden("the decode kernel"))
    backend = TritonAttentionBackend(6, 16, 2, 0.3, sliding_window=sliding_window, logits_soft_cap=soft_cap)
    out, kv_cache, expected, expected_cache = _forward_and_expected(batch, backend)
    assert_close(out, expected, dtype)
    assert torch.equal(kv_cache.isnan(), expected_cache.isnan())
    assert torch.equal(kv_cache.nan_to_num(), expected_cache.nan_to_num())


def test_forward_on_a_pure_decode_batch_uses_the_decode_kernel(monkeypatch):
    batch = make_batch([5, 17, 64, 2], num_kv_heads=1, group=8, head_size=32, block_size=32, write_new=False)
    monkeypatch.setattr(triton_backend, "paged_attention_prefill", _forbidden("the prefill kernel"))
    backend = TritonAttentionBackend(8, 32, 1, 32 ** -0.5)
    out, _, expected, _ = _forward_and_expected(batch, backend)
    assert_close(out, expected, torch.float32)


def test_selection_on_cuda_and_interpreted_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert TritonAttentionBackend.supports(cuda)
    assert TritonAttentionBackend.supports(cpu)  # the interpreter is on in this folder
    torch_backend = plugins.load("attention_backend", "torch")
    assert TritonAttentionBackend.priority(cuda) > torch_backend.priority(cuda)
    assert TritonAttentionBackend.priority(cpu) < torch_backend.priority(cpu)


def test_registered_as_triton():
    assert plugins.load("attention_backend", "triton") is TritonAttentionBackend


def test_interpreter_is_active():
    """Guards the conftest: had fw_kernels been imported before TRITON_INTERPRET was set,
    the kernels would be compiled for a GPU and every test here would fail obscurely."""
    from triton.runtime.interpreter import InterpretedFunction

    from fw_kernels import common, decode, kv_write, prefill

    assert common.INTERPRETED
    for kernel in (kv_write._write_kv_kernel, decode._decode_kernel, decode._reduce_kernel, prefill._prefill_kernel):
        assert isinstance(kernel, InterpretedFunction)


def test_poisoned_output_is_caught():
    """The harness itself: an output left unwritten must fail the comparison."""
    batch = make_batch([3, 9], [3, 2])
    with pytest.raises(AssertionError, match="unwritten"):
        assert_close(poisoned_like(batch.query), batch.query, torch.float32)


def test_without_the_interpreter_the_cpu_is_refused_clearly():
    """A fresh process without TRITON_INTERPRET: the backend declines the CPU, and a
    kernel called anyway names the fix instead of failing inside Triton."""
    code = (
        "import torch\n"
        "from fw_builtins.attention.triton_backend import TritonAttentionBackend\n"
        "from fw_kernels.kv_write import write_kv\n"
        "assert not TritonAttentionBackend.supports(torch.device('cpu'))\n"
        "x, cache = torch.randn(2, 1, 16), torch.randn(4, 16, 1, 16)\n"
        "try:\n"
        "    write_kv(x, x, cache, cache, torch.tensor([0, 1]))\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "TRITON_INTERPRET=1" in result.stdout



@pytest.mark.parametrize("kind,code,dynamic", [("int8", 1, True), ("fp8_e4m3", 2, False), ("fp8_e4m3", 2, True)])
def test_forward_over_a_quantized_cache(kind, code, dynamic):
    """int8 / fp8 codes with their scales (fw.attention.kv_format): the backend writes the
    step's rows as the torch twin writes them (same bytes) and attends as the reference
    does over the dequantized cache, decode and prefill kernels both."""
    from fw.attention.kv_format import KVCacheFormat
    from fw_kernels import kv_quant

    batch = make_batch([18, 1, 33, 12, 40], [1, 1, 7, 12, 1], num_kv_heads=2, group=3, head_size=16,
                       write_new=False)
    blocks, block_size = batch.key_cache.shape[:2]
    cache = torch.zeros(2, blocks, 2, block_size, 20, dtype=torch.int8 if kind == "int8" else torch.uint8)
    context = [c.nan_to_num().flatten(0, 1) for c in (batch.key_cache, batch.value_cache)]
    kv_quant.write_kv(*context, cache, torch.arange(blocks * block_size), kind, dynamic)
    expected_cache = cache.clone()
    kv_quant.write_kv(batch.key, batch.value, expected_cache, batch.slot_mapping, kind, dynamic)
    keys, values = kv_quant.dequantize_cache(expected_cache, kind)
    backend = TritonAttentionBackend(6, 16, 2, 0.3)
    backend.kv_format = KVCacheFormat(kind, dynamic)
    out = backend.forward(batch.query, batch.key, batch.value, cache, batch.metadata())
    assert torch.equal(cache, expected_cache)
    expected = reference.paged_attention_prefill(batch.query, keys, values, batch.block_table,
                                                 batch.query_start_loc, batch.seq_lens, 0.3)
    assert_close(out, expected, torch.float32)
    decode = make_batch([5, 17, 30], num_kv_heads=2, group=3, head_size=16, write_new=False)
    out = backend.forward(decode.query, decode.key, decode.value, cache, decode.metadata())
    kv_quant.write_kv(decode.key, decode.value, expected_cache, decode.slot_mapping, kind, dynamic)
    keys, values = kv_quant.dequantize_cache(expected_cache, kind)
    assert torch.equal(cache, expected_cache)
    expected = reference.paged_attention_decode(decode.query, keys, values, decode.block_table, decode.seq_lens, 0.3)
    assert_close(out, expected, torch.float32)
