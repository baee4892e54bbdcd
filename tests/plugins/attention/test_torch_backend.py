"""The CPU attention backend against the float32 reference, on random paged batches:
decoding, prefill over cached context, mixed steps, GQA, sliding window, soft-cap; with
fw's CPU kernel (the plain and the vector head sizes) and with the torch path that
replaces it where the kernels cannot be built."""

from __future__ import annotations

import pytest
import torch

from fw_builtins.attention.torch_backend import TorchAttentionBackend
from fw_kernels import cpu, reference
from tests.kernels.paged import TOLERANCE, make_batch


def finite(cache: torch.Tensor, seed: int) -> torch.Tensor:
    """The engine's caches hold zeros or stale finite values, never NaN: replace the
    helper's NaN traps by random junk, which still fails the comparison if read."""
    junk = torch.randn(cache.shape, generator=torch.Generator().manual_seed(seed)).to(cache.dtype) * 50
    return torch.where(cache.isnan(), junk, cache)


CASES = {
    "decode": ([5, 16, 17, 40], None),
    "prefill over cache": ([9, 33, 20], [9, 7, 20]),
    "mixed": ([30, 1, 47, 12], [1, 1, 5, 12]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("group", [1, 3])
@pytest.mark.parametrize("window,cap", [(None, None), (8, None), (None, 5.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("path", ["kernel-16", "kernel-64", "torch-16"])
def test_matches_the_reference(case, group, window, cap, dtype, path, monkeypatch):
    if path == "torch-16":
        monkeypatch.setattr(TorchAttentionBackend, "_fused", staticmethod(lambda *tensors: False))
    elif not cpu.available():
        pytest.skip("fw's CPU kernels could not be built here")
    head_size = int(path.split("-")[1])
    seq_lens, query_lens = CASES[case]
    batch = make_batch(seq_lens, query_lens, num_kv_heads=2, group=group, head_size=head_size, block_size=8,
                       dtype=dtype, write_new=False, seed=group)
    kv = torch.stack([finite(batch.key_cache, 1), finite(batch.value_cache, 2)])
    backend = TorchAttentionBackend(2 * group, head_size, 2, 0.25, sliding_window=window, logits_soft_cap=cap)
    out = backend.forward(batch.query, batch.key, batch.value, kv, batch.metadata())
    # The new tokens' keys and values were written where the reference expects them.
    reference.write_kv(batch.key, batch.value, batch.key_cache, batch.value_cache, batch.slot_mapping)
    written = batch.slot_mapping
    assert torch.equal(kv[0].flatten(0, 1)[written], batch.key_cache.flatten(0, 1)[written])
    expected = reference.paged_attention_prefill(
        batch.query, kv[0], kv[1], batch.block_table, batch.query_start_loc, batch.seq_lens, 0.25,
        sliding_window=window, soft_cap=cap)
    err = (out.float() - expected.float()).abs().max().item()
    assert err <= TOLERANCE[dtype], f"max abs error {err:.3g} ({dtype})"
