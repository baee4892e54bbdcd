"""fw's CPU decode-attention kernel against the torch reference, over the paged layout.

The batches poison every cache slot that holds no token (NaN), so a kernel reading past a
sequence's end, a window's start or into table padding fails the comparison.
"""

from __future__ import annotations

import pytest
import torch

from fw_kernels import cpu, reference
from tests.kernels.paged import assert_close, make_batch

F32, BF16 = torch.float32, torch.bfloat16

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")

# seq_lens (a single token, exactly one block, one past it, long), kv heads, GQA group,
# head size (32, 64 and 128 take the vector path, 48 the plain one), block size, dtype
CASES = [
    ([1, 16, 17, 45], 2, 2, 32, 16, F32),
    ([1, 16, 17, 45], 2, 1, 64, 16, F32),
    ([5, 32, 33, 200], 1, 3, 128, 32, F32),
    ([2, 31, 50], 1, 8, 48, 16, F32),
    ([9, 40, 300], 3, 3, 64, 16, BF16),
    ([3, 37], 2, 1, 128, 16, BF16),
    ([7, 19], 2, 2, 48, 8, BF16),
    # bf16 takes its queries 3 at a time at head size 64 and 1 at a time at 128
    ([1, 16, 33, 129], 1, 8, 64, 16, BF16),
    ([2, 17, 64], 2, 4, 128, 32, BF16),
]


def _expected(batch, scale, **kwargs):
    return reference.paged_attention_decode(batch.query, batch.key_cache, batch.value_cache, batch.block_table,
                                            batch.seq_lens, scale, **kwargs)


def _decode(batch, scale, **kwargs):
    return cpu.paged_decode(batch.query, batch.key_cache, batch.value_cache, batch.block_table, batch.seq_lens,
                            scale, max_len=batch.max_seq_len, **kwargs)


@pytest.mark.parametrize("seq_lens,num_kv_heads,group,head_size,block_size,dtype", CASES)
def test_matches_reference(seq_lens, num_kv_heads, group, head_size, block_size, dtype):
    batch = make_batch(seq_lens, num_kv_heads=num_kv_heads, group=group, head_size=head_size,
                       block_size=block_size, dtype=dtype)
    scale = head_size ** -0.5
    assert_close(_decode(batch, scale), _expected(batch, scale), dtype)


@pytest.mark.parametrize("dtype", [F32, BF16])
@pytest.mark.parametrize("head_size", [64, 48])
def test_sliding_window_and_soft_cap(dtype, head_size):
    batch = make_batch([3, 20, 70], num_kv_heads=2, group=2, head_size=head_size, dtype=dtype, seed=1)
    for kwargs in ({"sliding_window": 8}, {"soft_cap": 5.0}, {"sliding_window": 30, "soft_cap": 2.0}):
        assert_close(_decode(batch, 0.3, **kwargs), _expected(batch, 0.3, **kwargs), dtype)


def test_query_rows_may_be_strided():
    """The backend passes queries as a view into the fused qkv projection's output."""
    batch = make_batch([4, 33], num_kv_heads=2, group=2, head_size=64)
    tokens, heads, size = batch.query.shape
    wide = torch.randn(tokens, heads * size + 100)
    wide[:, : heads * size] = batch.query.flatten(1)
    view = wide[:, : heads * size].view(tokens, heads, size)
    assert not view.is_contiguous()
    out = cpu.paged_decode(view, batch.key_cache, batch.value_cache, batch.block_table, batch.seq_lens, 0.125,
                           max_len=batch.max_seq_len)
    assert_close(out, _expected(batch, 0.125), F32)


@pytest.mark.parametrize("head_size,group,dtype", [(64, 3, BF16), (128, 1, BF16), (64, 2, F32), (48, 2, F32)])
def test_a_rows_attention_does_not_depend_on_the_rows_beside_it(head_size, group, dtype):
    """Batch-invariant attention: each row sums its keys and values in one order over its
    own positions, so its output is the same bits alone, in any batch and whatever the
    longest context of the step (the scratch size); this is what makes a prompt's chunks and
    a cached prefix attend exactly as one whole prefill (every token is such a row)."""
    batch = make_batch([1, 16, 17, 45, 130, 33], num_kv_heads=2, group=group, head_size=head_size, dtype=dtype)
    whole = _decode(batch, 0.125)
    for i in range(len(batch.seq_lens)):
        rows = slice(i, i + 1)
        alone = cpu.paged_decode(batch.query[rows], batch.key_cache, batch.value_cache, batch.block_table[rows],
                                 batch.seq_lens[rows], 0.125, max_len=int(batch.seq_lens[i]))
        assert torch.equal(alone, whole[rows])
    pairs = [0, 4, 2]  # a sub-batch in another order
    subset = cpu.paged_decode(batch.query[pairs], batch.key_cache, batch.value_cache, batch.block_table[pairs],
                              batch.seq_lens[pairs], 0.125, max_len=batch.max_seq_len)
    assert torch.equal(subset, whole[pairs])
