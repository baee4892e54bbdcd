"""paged_attention_decode (Triton, interpreted) against its torch twin."""

from __future__ import annotations

import pytest
import torch

from fw_kernels import reference
from fw_kernels.decode import paged_attention_decode
from tests.kernels.paged import assert_close, make_batch, poisoned_like

F32, F16, BF16 = torch.float32, torch.float16, torch.bfloat16

# seq_lens (ragged: 1 token, exactly one block, one past a block, partial last blocks),
# num_kv_heads, GQA group, head_size, block_size, dtype
CASES = [
    ([1, 16, 17, 45], 2, 1, 64, 16, F32),
    ([5, 32, 33, 70], 1, 3, 128, 32, F32),
    ([2, 31, 50], 1, 8, 16, 16, F32),
    ([9, 40], 2, 3, 32, 16, F16),
    ([9, 40], 1, 8, 64, 32, BF16),
    ([3, 37], 2, 1, 128, 16, BF16),
]


def _run(batch, scale, **kwargs):
    out = poisoned_like(batch.query)
    result = paged_attention_decode(batch.query, batch.key_cache, batch.value_cache, batch.block_table,
                                    batch.seq_lens, scale, out=out, **kwargs)
    assert result is out
    return out


def _expected(batch, scale, sliding_window=None, soft_cap=None):
    return reference.paged_attention_decode(batch.query, batch.key_cache, batch.value_cache, batch.block_table,
                                            batch.seq_lens, scale, sliding_window=sliding_window, soft_cap=soft_cap)


@pytest.mark.parametrize("partition_size", [512, 32], ids=["one-partition", "split"])
@pytest.mark.parametrize("seq_lens,num_kv_heads,group,head_size,block_size,dtype", CASES)
def test_decode_matches_reference(seq_lens, num_kv_heads, group, head_size, block_size, dtype, partition_size):
    batch = make_batch(seq_lens, num_kv_heads=num_kv_heads, group=group, head_size=head_size,
                       block_size=block_size, dtype=dtype, seed=len(seq_lens) + head_size)
    scale = head_size ** -0.5
    # block_n 16 < partition 32: a partition spans several tiles, the short sequences
    # leave later partitions empty.
    out = _run(batch, scale, partition_size=partition_size, block_n=16)
    assert_close(out, _expected(batch, scale), dtype)


@pytest.mark.parametrize("partition_size", [512, 16], ids=["one-partition", "split"])
@pytest.mark.parametrize("sliding_window,soft_cap", [(7, None), (None, 1.5), (20, 4.0), (1, None)])
def test_decode_window_and_soft_cap(sliding_window, soft_cap, partition_size):
    batch = make_batch([3, 18, 51], num_kv_heads=2, group=3, head_size=32, block_size=16, seed=3)
    # a larger scale so the soft cap actually bends the logits
    out = _run(batch, 0.5, sliding_window=sliding_window, soft_cap=soft_cap, partition_size=partition_size,
               block_n=16)
    assert_close(out, _expected(batch, 0.5, sliding_window, soft_cap), F32)


@pytest.mark.parametrize("block_size", [1, 8, 64, 128])
def test_decode_other_block_sizes(block_size):
    batch = make_batch([1, 7, 65, 130], num_kv_heads=1, group=3, head_size=16, block_size=block_size, seed=block_size)
    out = _run(batch, 0.25, max_seq_len=batch.max_seq_len, partition_size=64, block_n=32)
    assert_close(out, _expected(batch, 0.25), F32)


def test_decode_lengthens_partitions_past_64_splits():
    batch = make_batch([2, 130], num_kv_heads=2, group=3, head_size=16, seed=9)
    out = _run(batch, 0.25, partition_size=1, block_n=16)  # 130 one-token partitions asked for
    assert_close(out, _expected(batch, 0.25), F32)


def test_decode_rejects_unsupported_inputs():
    batch = make_batch([4, 9], num_kv_heads=2, group=2)
    args = (batch.key_cache, batch.value_cache, batch.block_table, batch.seq_lens, 1.0)
    with pytest.raises(ValueError, match="float64"):
        paged_attention_decode(batch.query.double(), *args)
    with pytest.raises(ValueError, match="multiple of"):
        paged_attention_decode(batch.query[:, :3], *args)
    with pytest.raises(ValueError, match="block_n"):
        paged_attention_decode(batch.query, *args, block_n=24)
    with pytest.raises(ValueError, match="sliding_window"):
        paged_attention_decode(batch.query, *args, sliding_window=0)
