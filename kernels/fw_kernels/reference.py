"""Plain-torch twins of the Triton kernels: the oracle the kernels are tested against,
and building blocks for a CPU attention path.

Same arguments and semantics as ``write_kv``, ``paged_attention_decode`` and
``paged_attention_prefill`` (minus the tuning knobs); attention is computed in float32 one
sequence at a time with an explicit mask, which is slow but easy to check.
"""

from __future__ import annotations

import torch


def write_kv(key, value, key_cache, value_cache, slot_mapping) -> None:
    """Store ``key``/``value`` [T, num_kv_heads, head_size] at ``slot_mapping``; negative slots are skipped."""
    keep = slot_mapping >= 0
    slots = slot_mapping[keep].long()
    block_size = key_cache.shape[1]
    blocks, offsets = slots // block_size, slots % block_size
    key_cache[blocks, offsets] = key[keep]
    value_cache[blocks, offsets] = value[keep]


def gather_context(key_cache, value_cache, block_row, seq_len: int):
    """The first ``seq_len`` keys and values of one sequence, each [seq_len, num_kv_heads, head_size]."""
    block_size = key_cache.shape[1]
    blocks = block_row[: -(-seq_len // block_size)].long()
    return key_cache[blocks].flatten(0, 1)[:seq_len], value_cache[blocks].flatten(0, 1)[:seq_len]


def paged_attention_prefill(
    query, key_cache, value_cache, block_table, query_start_loc, seq_lens, scale, *,
    sliding_window: int | None = None, soft_cap: float | None = None,
) -> torch.Tensor:
    """Causal attention of each new token (the last ``q_len`` positions of its sequence)
    over the cached context; query [T, num_heads, head_size] → [T, num_heads, head_size]."""
    out = torch.empty_like(query)
    group = query.shape[1] // key_cache.shape[2]
    starts = query_start_loc.tolist()
    for i, seq_len in enumerate(seq_lens.tolist()):
        q = query[starts[i]: starts[i + 1]].float()
        q_len = q.shape[0]
        if q_len == 0:
            continue
        k, v = gather_context(key_cache, value_cache, block_table[i], seq_len)
        k = k.float().repeat_interleave(group, dim=1)  # query head h reads KV head h // group
        v = v.float().repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) * scale
        if soft_cap is not None:
            scores = soft_cap * torch.tanh(scores / soft_cap)
        q_pos = torch.arange(seq_len - q_len, seq_len, device=query.device)[:, None]
        k_pos = torch.arange(seq_len, device=query.device)[None, :]
        visible = k_pos <= q_pos
        if sliding_window is not None:
            visible &= k_pos > q_pos - sliding_window
        scores = scores.masked_fill(~visible, float("-inf"))
        out[starts[i]: starts[i + 1]] = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).to(query.dtype)
    return out


def paged_attention_decode(
    query, key_cache, value_cache, block_table, seq_lens, scale, *,
    sliding_window: int | None = None, soft_cap: float | None = None,
) -> torch.Tensor:
    """One new token per sequence: the prefill twin with every chunk of length 1."""
    query_start_loc = torch.arange(query.shape[0] + 1, dtype=torch.int32, device=query.device)
    return paged_attention_prefill(query, key_cache, value_cache, block_table, query_start_loc, seq_lens,
                                   scale, sliding_window=sliding_window, soft_cap=soft_cap)
