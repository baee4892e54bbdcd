"""The oracle itself: the torch twins against naive dense causal attention (float64,
one query and head at a time, no paging), so the kernels are compared with something right."""

from __future__ import annotations

import math

import pytest
import torch

from fw_kernels import reference
from tests.kernels.paged import make_batch


def naive_attention(q, k, v, position, scale, window=None, cap=None):
    """One query vector over dense keys/values [L, D] of its head, at ``position``."""
    out = torch.zeros_like(q, dtype=torch.float64)
    logits, rows = [], []
    for j in range(position + 1):
        if window is not None and position - j >= window:
            continue
        x = float(q.double() @ k[j].double()) * scale
        logits.append(cap * math.tanh(x / cap) if cap is not None else x)
        rows.append(j)
    top = max(logits)
    weights = [math.exp(x - top) for x in logits]
    for w, j in zip(weights, rows):
        out += w * v[j].double()
    return out / sum(weights)


def naive_batch(batch, scale, window=None, cap=None):
    group = batch.query.shape[1] // batch.key_cache.shape[2]
    out = torch.empty(batch.query.shape, dtype=torch.float64)
    starts = batch.query_start_loc.tolist()
    for i, (seq_len, q_len) in enumerate(zip(batch.seq_lens.tolist(), batch.query_lens)):
        for t in range(q_len):
            for h in range(batch.query.shape[1]):
                out[starts[i] + t, h] = naive_attention(
                    batch.query[starts[i] + t, h], batch.keys[i][:, h // group], batch.values[i][:, h // group],
                    seq_len - q_len + t, scale, window, cap)
    return out


@pytest.mark.parametrize("group,window,cap", [(1, None, None), (3, 5, None), (2, None, 2.0), (1, 4, 3.0)])
def test_prefill_reference_matches_naive(group, window, cap):
    # a fresh prefill, a chunk over a cached prefix, and a decode token in one batch
    batch = make_batch([7, 21, 13], [7, 5, 1], group=group, head_size=8, block_size=4, seed=group)
    out = reference.paged_attention_prefill(
        batch.query, batch.key_cache, batch.value_cache, batch.block_table, batch.query_start_loc,
        batch.seq_lens, 0.4, sliding_window=window, soft_cap=cap)
    expected = naive_batch(batch, 0.4, window, cap)
    assert (out.double() - expected).abs().max() <= 1e-5


def test_decode_reference_matches_naive():
    batch = make_batch([1, 9, 16, 17], num_kv_heads=2, group=3, head_size=8, block_size=8, seed=5)
    out = reference.paged_attention_decode(batch.query, batch.key_cache, batch.value_cache, batch.block_table,
                                           batch.seq_lens, 0.3, sliding_window=6)
    assert (out.double() - naive_batch(batch, 0.3, 6)).abs().max() <= 1e-5


def test_write_kv_reference_stores_at_slots_and_skips_padding():
    batch = make_batch([5, 9], [5, 3], block_size=4, write_new=False)
    slots = batch.slot_mapping.clone()
    slots[1] = -1  # a padding token: its slot must stay untouched
    reference.write_kv(batch.key, batch.value, batch.key_cache, batch.value_cache, slots)
    flat_k = batch.key_cache.view(-1, *batch.key_cache.shape[2:])
    flat_v = batch.value_cache.view(-1, *batch.value_cache.shape[2:])
    keep = slots >= 0
    assert torch.equal(flat_k[slots[keep]], batch.key[keep])
    assert torch.equal(flat_v[slots[keep]], batch.value[keep])
    assert flat_k[batch.slot_mapping[1]].isnan().all()
