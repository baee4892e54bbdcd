"""Paged attention for query chunks: chunked prefill, prefix-cache hits, mixed batches.

Sequence ``i`` brings ``q_len`` new tokens (rows ``query_start_loc[i]:[i+1]``) and has
``seq_len`` tokens of context once they are stored, so its new tokens sit at positions
``seq_len - q_len .. seq_len - 1``. Every key and value is read from the paged cache
(``forward`` stores this step's tokens first), so a cached prefix and the new chunk are
the same case.

A program owns one (query tile, sequence, KV head). Its rows are query tokens times the
``GROUP`` query heads sharing that KV head (row ``r`` = token ``r // GROUP``, head
``r % GROUP``), so each key/value tile is loaded once for the whole group.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fw_kernels.common import (
    apply_soft_cap, check_cache, check_device, check_dtype, check_last_dim_contiguous,
    check_tile, check_window_and_cap, compute_dtype, dot_block,
)
from fw_kernels.kv_codes import kv_kind_of, load_kv

_LOG2E = tl.constexpr(1.4426950408889634)  # exp(x) == exp2(x * log2(e))


@triton.jit
def _prefill_kernel(
    q_ptr, k_cache_ptr, v_cache_ptr, block_table_ptr, query_start_ptr, seq_lens_ptr, out_ptr,
    scale, soft_cap, window,
    stride_qt, stride_qh, stride_ot, stride_oh, stride_bt,
    stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    GROUP: tl.constexpr, HEAD_SIZE: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    TILE_TOKENS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    USE_WINDOW: tl.constexpr, USE_SOFT_CAP: tl.constexpr, DOT_DTYPE: tl.constexpr, KV_KIND: tl.constexpr = 0,
):
    tile = tl.program_id(0)
    seq = tl.program_id(1)
    kv_head = tl.program_id(2)
    q_start = tl.load(query_start_ptr + seq)
    q_len = tl.load(query_start_ptr + seq + 1) - q_start
    if tile * TILE_TOKENS >= q_len:  # the grid is sized for the longest chunk
        return
    seq_len = tl.load(seq_lens_ptr + seq)
    first_tok = tile * TILE_TOKENS
    last_tok = tl.minimum(first_tok + TILE_TOKENS, q_len) - 1
    offset = seq_len - q_len  # position of the chunk's first token in its sequence

    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    tok = first_tok + offs_m // GROUP
    heads = kv_head * GROUP + offs_m % GROUP
    m_mask = (offs_m < TILE_TOKENS * GROUP) & (tok <= last_tok)
    d_mask = offs_d < HEAD_SIZE
    q_off = (q_start + tok).to(tl.int64) * stride_qt + heads * stride_qh
    q = tl.load(q_ptr + q_off[:, None] + offs_d[None, :], mask=m_mask[:, None] & d_mask[None, :],
                other=0.0).to(DOT_DTYPE)
    # Each row's position; padding rows take the tile's last token's, so every row sees
    # at least one key and no 0/0 arises in rows that are never stored.
    pos = offset + tl.minimum(tok, last_tok)

    lo = 0
    if USE_WINDOW:
        lo = tl.maximum(offset + first_tok - window + 1, 0)
    hi = offset + last_tok + 1

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start in range(lo, hi, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_mask = offs_n < hi
        block = tl.load(block_table_ptr + seq * stride_bt + offs_n // BLOCK_SIZE, mask=n_mask, other=0)
        slot = offs_n % BLOCK_SIZE
        kv_mask = n_mask[:, None] & d_mask[None, :]
        k_row = block.to(tl.int64) * stride_kb + slot * stride_ks + kv_head * stride_kh
        k = load_kv(k_cache_ptr, k_row, offs_d, kv_mask, HEAD_SIZE, KV_KIND).to(DOT_DTYPE)
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        if USE_SOFT_CAP:
            s = apply_soft_cap(s, soft_cap)
        visible = n_mask[None, :] & (offs_n[None, :] <= pos[:, None])
        if USE_WINDOW:
            visible = visible & (offs_n[None, :] > pos[:, None] - window)
        s = tl.where(visible, s * _LOG2E, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        # With a window a row may see nothing in this tile yet (m_new = -inf); shifting by 0
        # then keeps exp2 away from (-inf) - (-inf).
        m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_shift)
        p = tl.exp2(s - m_shift[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v_row = block.to(tl.int64) * stride_vb + slot * stride_vs + kv_head * stride_vh
        v = load_kv(v_cache_ptr, v_row, offs_d, kv_mask, HEAD_SIZE, KV_KIND).to(DOT_DTYPE)
        acc = acc * alpha[:, None] + tl.dot(p.to(DOT_DTYPE), v, input_precision="ieee")
        m_i = m_new

    out = acc / l_i[:, None]
    o_off = (q_start + tok).to(tl.int64) * stride_ot + heads * stride_oh
    tl.store(out_ptr + o_off[:, None] + offs_d[None, :], out.to(out_ptr.dtype.element_ty),
             mask=m_mask[:, None] & d_mask[None, :])


def paged_attention_prefill(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_table: torch.Tensor,
    query_start_loc: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    *,
    sliding_window: int | None = None,
    soft_cap: float | None = None,
    max_query_len: int | None = None,
    out: torch.Tensor | None = None,
    block_m: int = 64,
    block_n: int = 64,
) -> torch.Tensor:
    """Causal attention of every new token over its sequence's context in the paged cache.

    query [T, num_heads, head_size] (the flattened chunks); caches [num_blocks,
    block_size, num_kv_heads, head_size] already holding every token including this
    step's; block_table int32 [num_seqs, max_blocks]; query_start_loc int32
    [num_seqs + 1]; seq_lens int32 [num_seqs] (context length including the new tokens).
    ``sliding_window`` lets a token see itself and the ``window - 1`` tokens before it;
    ``soft_cap`` maps the scaled logits through ``cap * tanh(x / cap)``. ``max_query_len``
    (a host int) sizes the grid without a device sync. Returns ``out`` [T, num_heads, head_size].
    """
    if query.dim() != 3:
        raise ValueError(f"query must be [num_tokens, num_heads, head_size], got {tuple(query.shape)}")
    num_tokens, num_heads, head_size = query.shape
    check_dtype("query", query)
    num_kv_heads = key_cache.shape[2] if key_cache.dim() == 4 else -1
    if num_kv_heads < 1 or num_heads % num_kv_heads:
        raise ValueError(f"num_heads ({num_heads}) must be a multiple of the cache's num_kv_heads ({num_kv_heads})")
    kv_kind = kv_kind_of(key_cache)  # a quantized cache's codes: fw.attention.kv_format
    block_size = check_cache(key_cache, value_cache, num_kv_heads, head_size, quantized=kv_kind != 0)
    if not kv_kind:
        check_dtype("key_cache", key_cache, query.dtype)
    check_window_and_cap(sliding_window, soft_cap)
    check_tile("block_m", block_m)
    check_tile("block_n", block_n)
    num_seqs = seq_lens.shape[0]
    if seq_lens.dim() != 1 or query_start_loc.shape != (num_seqs + 1,) or block_table.dim() != 2 \
            or block_table.shape[0] != num_seqs:
        raise ValueError(f"seq_lens must be [num_seqs], query_start_loc [num_seqs + 1] and block_table "
                         f"[num_seqs, max_blocks]; got {tuple(seq_lens.shape)}, "
                         f"{tuple(query_start_loc.shape)}, {tuple(block_table.shape)}")
    if out is None:
        out = torch.empty_like(query, memory_format=torch.contiguous_format)
    elif out.shape != query.shape or out.dtype != query.dtype:
        raise ValueError(f"out must be {tuple(query.shape)} {query.dtype}, got {tuple(out.shape)} {out.dtype}")
    check_last_dim_contiguous(query=query, key_cache=key_cache, value_cache=value_cache, out=out)
    check_device(query, key_cache, value_cache, block_table, query_start_loc, seq_lens, out)
    if num_tokens == 0 or num_seqs == 0:
        return out

    if max_query_len is None:
        max_query_len = int((query_start_loc[1:] - query_start_loc[:-1]).max())
    group = num_heads // num_kv_heads
    block_m = max(block_m, dot_block(group))  # a tile holds at least one token's whole group
    tile_tokens = block_m // group
    grid = (triton.cdiv(max_query_len, tile_tokens), num_seqs, num_kv_heads)
    _prefill_kernel[grid](
        query, key_cache, value_cache, block_table, query_start_loc, seq_lens, out,
        scale, soft_cap or 1.0, sliding_window or 0,
        query.stride(0), query.stride(1), out.stride(0), out.stride(1), block_table.stride(0),
        key_cache.stride(0), key_cache.stride(1), key_cache.stride(2),
        value_cache.stride(0), value_cache.stride(1), value_cache.stride(2),
        GROUP=group, HEAD_SIZE=head_size, BLOCK_SIZE=block_size,
        TILE_TOKENS=tile_tokens, BLOCK_M=block_m, BLOCK_D=dot_block(head_size), BLOCK_N=block_n,
        USE_WINDOW=sliding_window is not None, USE_SOFT_CAP=soft_cap is not None,
        DOT_DTYPE=compute_dtype(query.dtype), KV_KIND=kv_kind,
    )
    return out
