"""Paged attention for decoding: one query token per sequence.

A program owns one (sequence, KV head, context partition) and all the query heads that
share that KV head, so each key/value is read once per group (grouped-query attention).
Long contexts are split into partitions that run in parallel (flash-decoding); each
writes an unnormalised partial output with its running max and sum, and a second kernel
merges them. A context that fits one partition writes the output directly.
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
#: more partitions than this are merged slowly by one reduction program, so long contexts
#: get longer partitions instead
_MAX_SPLITS = 64


@triton.jit
def _decode_kernel(
    q_ptr, k_cache_ptr, v_cache_ptr, block_table_ptr, seq_lens_ptr,
    out_ptr, part_acc_ptr, part_m_ptr, part_l_ptr,
    scale, soft_cap, window, partition, num_splits,
    stride_qs, stride_qh, stride_os, stride_oh, stride_bt,
    stride_kb, stride_ks, stride_kh, stride_vb, stride_vs, stride_vh,
    GROUP: tl.constexpr, HEAD_SIZE: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    BLOCK_G: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
    USE_WINDOW: tl.constexpr, USE_SOFT_CAP: tl.constexpr, SPLIT: tl.constexpr,
    DOT_DTYPE: tl.constexpr, KV_KIND: tl.constexpr = 0,
):
    seq = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    seq_len = tl.load(seq_lens_ptr + seq)
    lo = split * partition
    if USE_WINDOW:  # the query (position seq_len - 1) sees the last `window` tokens
        lo = tl.maximum(lo, seq_len - window)
    hi = tl.minimum((split + 1) * partition, seq_len)

    offs_g = tl.arange(0, BLOCK_G)
    offs_d = tl.arange(0, BLOCK_D)
    heads = kv_head * GROUP + offs_g
    g_mask = offs_g < GROUP
    d_mask = offs_d < HEAD_SIZE
    q = tl.load(q_ptr + seq * stride_qs + heads[:, None] * stride_qh + offs_d[None, :],
                mask=g_mask[:, None] & d_mask[None, :], other=0.0).to(DOT_DTYPE)

    # Running max (log2 domain), sum and output of an online softmax.
    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    for start in range(lo, hi, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        n_mask = offs_n < hi
        # Each token finds its own block, so BLOCK_N is independent of the cache's block size.
        block = tl.load(block_table_ptr + seq * stride_bt + offs_n // BLOCK_SIZE, mask=n_mask, other=0)
        row = block.to(tl.int64) * stride_kb + (offs_n % BLOCK_SIZE) * stride_ks + kv_head * stride_kh
        kv_mask = n_mask[:, None] & d_mask[None, :]
        k = load_kv(k_cache_ptr, row, offs_d, kv_mask, HEAD_SIZE, KV_KIND).to(DOT_DTYPE)
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
        if USE_SOFT_CAP:
            s = apply_soft_cap(s, soft_cap)
        s = s * _LOG2E
        s = tl.where(n_mask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        vrow = block.to(tl.int64) * stride_vb + (offs_n % BLOCK_SIZE) * stride_vs + kv_head * stride_vh
        v = load_kv(v_cache_ptr, vrow, offs_d, kv_mask, HEAD_SIZE, KV_KIND).to(DOT_DTYPE)
        acc = acc * alpha[:, None] + tl.dot(p.to(DOT_DTYPE), v, input_precision="ieee")
        m_i = m_new

    out_mask = g_mask[:, None] & d_mask[None, :]
    if SPLIT:
        part = (seq * GROUP * tl.num_programs(1) + heads) * num_splits + split
        tl.store(part_acc_ptr + part[:, None] * HEAD_SIZE + offs_d[None, :], acc, mask=out_mask)
        tl.store(part_m_ptr + part, m_i, mask=g_mask)
        tl.store(part_l_ptr + part, l_i, mask=g_mask)
    else:
        out = acc / l_i[:, None]
        tl.store(out_ptr + seq * stride_os + heads[:, None] * stride_oh + offs_d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _reduce_kernel(
    out_ptr, part_acc_ptr, part_m_ptr, part_l_ptr, num_splits,
    stride_os, stride_oh,
    HEAD_SIZE: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_SPLITS: tl.constexpr,
):
    """Merge the partitions of one (sequence, query head); empty ones carry m = -inf."""
    seq = tl.program_id(0)
    head = tl.program_id(1)
    part = (seq * tl.num_programs(1) + head) * num_splits
    offs_s = tl.arange(0, BLOCK_SPLITS)
    offs_d = tl.arange(0, BLOCK_D)
    s_mask = offs_s < num_splits
    d_mask = offs_d < HEAD_SIZE
    m = tl.load(part_m_ptr + part + offs_s, mask=s_mask, other=float("-inf"))
    l = tl.load(part_l_ptr + part + offs_s, mask=s_mask, other=0.0)
    acc = tl.load(part_acc_ptr + (part + offs_s[:, None]) * HEAD_SIZE + offs_d[None, :],
                  mask=s_mask[:, None] & d_mask[None, :], other=0.0)
    m_max = tl.max(m, 0)  # finite: the partition holding the query's own token is never empty
    w = tl.exp2(m - m_max)
    out = tl.sum(acc * w[:, None], 0) / tl.sum(l * w, 0)
    tl.store(out_ptr + seq * stride_os + head * stride_oh + offs_d, out.to(out_ptr.dtype.element_ty), mask=d_mask)


def paged_attention_decode(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    *,
    sliding_window: int | None = None,
    soft_cap: float | None = None,
    max_seq_len: int | None = None,
    out: torch.Tensor | None = None,
    partition_size: int = 512,
    block_n: int = 64,
) -> torch.Tensor:
    """Attention of each sequence's single new token over its whole cached context.

    query [num_seqs, num_heads, head_size]; caches [num_blocks, block_size, num_kv_heads,
    head_size] already holding every token including the new one; block_table int32
    [num_seqs, max_blocks]; seq_lens int32 [num_seqs] (context length, >= 1).
    ``sliding_window`` keeps the last that many tokens; ``soft_cap`` maps the scaled
    logits through ``cap * tanh(x / cap)``. ``max_seq_len`` (a host int, at least every
    seq_len) sizes the split without a device sync. Contexts longer than
    ``partition_size`` tokens are split (at most 64 ways, lengthening partitions beyond
    that). Returns ``out`` [num_seqs, num_heads, head_size].
    """
    if query.dim() != 3:
        raise ValueError(f"query must be [num_seqs, num_heads, head_size], got {tuple(query.shape)}")
    num_seqs, num_heads, head_size = query.shape
    check_dtype("query", query)
    num_kv_heads = key_cache.shape[2] if key_cache.dim() == 4 else -1  # (quantized: transposed views)
    if num_kv_heads < 1 or num_heads % num_kv_heads:
        raise ValueError(f"num_heads ({num_heads}) must be a multiple of the cache's num_kv_heads ({num_kv_heads})")
    kv_kind = kv_kind_of(key_cache)  # a quantized cache's codes: fw.attention.kv_format
    block_size = check_cache(key_cache, value_cache, num_kv_heads, head_size, quantized=kv_kind != 0)
    if not kv_kind:
        check_dtype("key_cache", key_cache, query.dtype)
    check_window_and_cap(sliding_window, soft_cap)
    check_tile("block_n", block_n)
    if partition_size < 1:
        raise ValueError(f"partition_size must be >= 1, got {partition_size}")
    if block_table.dim() != 2 or block_table.shape[0] != num_seqs or seq_lens.shape != (num_seqs,):
        raise ValueError(f"block_table must be [{num_seqs}, max_blocks] and seq_lens [{num_seqs}]")
    if out is None:
        out = torch.empty_like(query, memory_format=torch.contiguous_format)
    elif out.shape != query.shape or out.dtype != query.dtype:
        raise ValueError(f"out must be {tuple(query.shape)} {query.dtype}, got {tuple(out.shape)} {out.dtype}")
    check_last_dim_contiguous(query=query, key_cache=key_cache, value_cache=value_cache, out=out)
    check_device(query, key_cache, value_cache, block_table, seq_lens, out)
    if num_seqs == 0:
        return out

    if max_seq_len is None:
        max_seq_len = int(seq_lens.max())
    num_splits = triton.cdiv(max_seq_len, partition_size)
    if num_splits > _MAX_SPLITS:
        partition_size = triton.cdiv(triton.cdiv(max_seq_len, _MAX_SPLITS), block_n) * block_n
        num_splits = triton.cdiv(max_seq_len, partition_size)
    group = num_heads // num_kv_heads
    if num_splits > 1:
        part_acc = torch.empty(num_seqs, num_heads, num_splits, head_size, dtype=torch.float32, device=query.device)
        part_m = torch.empty(num_seqs, num_heads, num_splits, dtype=torch.float32, device=query.device)
        part_l = torch.empty_like(part_m)
    else:
        part_acc = part_m = part_l = out  # unused by the single-partition variant
    block_d = dot_block(head_size)
    _decode_kernel[(num_seqs, num_kv_heads, num_splits)](
        query, key_cache, value_cache, block_table, seq_lens, out, part_acc, part_m, part_l,
        scale, soft_cap or 1.0, sliding_window or 0, partition_size, num_splits,
        query.stride(0), query.stride(1), out.stride(0), out.stride(1), block_table.stride(0),
        key_cache.stride(0), key_cache.stride(1), key_cache.stride(2),
        value_cache.stride(0), value_cache.stride(1), value_cache.stride(2),
        GROUP=group, HEAD_SIZE=head_size, BLOCK_SIZE=block_size,
        BLOCK_G=dot_block(group), BLOCK_D=block_d, BLOCK_N=block_n,
        USE_WINDOW=sliding_window is not None, USE_SOFT_CAP=soft_cap is not None, SPLIT=num_splits > 1,
        DOT_DTYPE=compute_dtype(query.dtype), KV_KIND=kv_kind,
    )
    if num_splits > 1:
        _reduce_kernel[(num_seqs, num_heads)](
            out, part_acc, part_m, part_l, num_splits, out.stride(0), out.stride(1),
            HEAD_SIZE=head_size, BLOCK_D=block_d, BLOCK_SPLITS=triton.next_power_of_2(num_splits),
        )
    return out
