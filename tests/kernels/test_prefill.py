"""paged_attention_prefill (Triton, interpreted) against its torch twin."""

from __future__ import annotations

import pytest
import torch

from fw_kernels import reference
from fw_kernels.prefill import paged_attention_prefill
from tests.kernels.paged import assert_close, make_batch, poisoned_like

F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16

# Each batch mixes a fresh prompt (query_len == seq_len), chunks over a cached prefix
# that ends mid-block, and decode tokens (query_len 1).
# seq_lens, query_lens, num_kv_heads, group, head_size, block_size, dtype
CASES = [
    ([23, 40, 17, 1], [23, 9, 1, 1], 2, 1, 64, 16, F32),
    ([12, 50, 33], [12, 17, 1], 1, 3, 128, 32, F32),
    ([9, 35, 20], [9, 6, 1], 1, 8, 16, 16, F32),
    ([30, 19], [30, 3], 2, 1, 80, 16, F32),  # head_size that is not a power of two
    ([14, 41], [14, 10], 2, 3, 32, 16, F16),
    ([14, 41], [14, 10], 1, 8, 64, 32, BF16),
]


def _run(batch, scale, **kwargs):
    out = poisoned_like(batch.query)
    result = paged_attention_prefill(batch.query, batch.key_cache, batch.value_cache, batch.block_table,
                                     batch.query_start_loc, batch.seq_lens, scale, out=out, **kwargs)
    assert result is out
    return out


def _expected(batch, scale, sliding_window=None, soft_cap=None):
    return reference.paged_attention_prefill(
        batch.query, batch.key_cache, batch.value_cache, batch.block_table, batch.query_start_loc,
        batch.seq_lens, scale, sliding_window=sliding_window, soft_cap=soft_cap)


@pytest.mark.parametrize("seq_lens,query_lens,num_kv_heads,group,head_size,block_size,dtype", CASES)
def test_prefill_matches_reference(seq_lens, query_lens, num_kv_heads, group, head_size, block_size, dtype):
    batch = make_batch(seq_lens, query_lens, num_kv_heads=num_kv_heads, group=group, head_size=head_size,
                       block_size=block_size, dtype=dtype, seed=head_size + group)
    scale = head_size ** -0.5
    # 16-row tiles: a chunk spans several query tiles and each tile several key tiles.
    out = _run(batch, scale, max_query_len=batch.max_query_len, block_m=16, block_n=16)
    assert_close(out, _expected(batch, scale), dtype)


@pytest.mark.parametrize("sliding_window,soft_cap", [(5, None), (None, 1.5), (12, 4.0), (1, None)])
@pytest.mark.parametrize("group,block_m", [(1, 16), (3, 16), (1, 64)])
def test_prefill_window_and_soft_cap(sliding_window, soft_cap, group, block_m):
    # With block_m 64 a query tile spans more tokens than a key tile, so a window can hide
    # a whole key tile from a row that has seen nothing yet.
    batch = make_batch([26, 44, 9], [26, 12, 1], num_kv_heads=2, group=group, head_size=32, seed=group)
    out = _run(batch, 0.5, sliding_window=sliding_window, soft_cap=soft_cap, block_m=block_m, block_n=16)
    assert_close(out, _expected(batch, 0.5, sliding_window, soft_cap), F32)


def test_prefill_default_tiles_and_other_block_sizes():
    for block_size in (1, 128):
        batch = make_batch([70, 131], [70, 5], num_kv_heads=1, group=3, head_size=16, block_size=block_size)
        out = _run(batch, 0.25)
        assert_close(out, _expected(batch, 0.25), F32)


def test_prefill_rejects_unsupported_inputs():
    batch = make_batch([4, 9], [4, 2], num_kv_heads=2, group=2)
    args = (batch.key_cache, batch.value_cache, batch.block_table, batch.query_start_loc, batch.seq_lens, 1.0)
    with pytest.raises(ValueError, match="int32"):
        paged_attention_prefill(batch.query.to(torch.int32), *args)
    with pytest.raises(ValueError, match="dtype"):
        paged_attention_prefill(batch.query.half(), *args)
    with pytest.raises(ValueError, match="block_m"):
        paged_attention_prefill(batch.query, *args, block_m=8)
    with pytest.raises(ValueError, match="soft_cap"):
        paged_attention_prefill(batch.query, *args, soft_cap=-1.0)
    with pytest.raises(ValueError, match="query_start_loc"):
        paged_attention_prefill(batch.query, batch.key_cache, batch.value_cache, batch.block_table,
                                batch.query_start_loc[:-1], batch.seq_lens, 1.0)
