"""write_kv (Triton, interpreted) against its torch twin."""

from __future__ import annotations

import pytest
import torch

from fw_kernels import reference
from fw_kernels.kv_write import write_kv
from tests.kernels.paged import make_batch


def _nan_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("block_size,num_kv_heads,head_size", [(16, 1, 64), (32, 3, 128), (1, 2, 16), (128, 8, 32)])
def test_write_kv_matches_reference(dtype, block_size, num_kv_heads, head_size):
    batch = make_batch([3, 40, 17], [3, 9, 1], num_kv_heads=num_kv_heads, head_size=head_size,
                       block_size=block_size, dtype=dtype, write_new=False)
    slots = batch.slot_mapping.clone()
    slots[4] = -1  # padding token
    expected_k, expected_v = batch.key_cache.clone(), batch.value_cache.clone()
    reference.write_kv(batch.key, batch.value, expected_k, expected_v, slots)
    write_kv(batch.key, batch.value, batch.key_cache, batch.value_cache, slots)
    # The caches start NaN where no token lives: equality including NaNs proves every
    # slot was written exactly where it belongs and nothing else was touched.
    assert _nan_equal(batch.key_cache, expected_k)
    assert _nan_equal(batch.value_cache, expected_v)


def test_write_kv_takes_strided_views_of_a_fused_projection():
    batch = make_batch([6, 11], [6, 4], num_kv_heads=2, head_size=16, write_new=False)
    num_tokens = batch.key.shape[0]
    fused = torch.randn(num_tokens, 3, 2, 16)  # [q | k | v] as one projection output
    key, value = fused[:, 1], fused[:, 2]
    expected_k, expected_v = batch.key_cache.clone(), batch.value_cache.clone()
    reference.write_kv(key, value, expected_k, expected_v, batch.slot_mapping)
    write_kv(key, value, batch.key_cache, batch.value_cache, batch.slot_mapping)
    assert _nan_equal(batch.key_cache, expected_k) and _nan_equal(batch.value_cache, expected_v)


def test_write_kv_rejects_mismatched_inputs():
    batch = make_batch([4], [4], write_new=False)
    with pytest.raises(ValueError, match="dtype"):
        write_kv(batch.key.double(), batch.value.double(), batch.key_cache, batch.value_cache, batch.slot_mapping)
    with pytest.raises(ValueError, match="num_kv_heads"):
        write_kv(batch.key[:, :1], batch.value[:, :1], batch.key_cache, batch.value_cache, batch.slot_mapping)
    with pytest.raises(ValueError, match="slot_mapping"):
        write_kv(batch.key, batch.value, batch.key_cache, batch.value_cache, batch.slot_mapping[:2])
