"""Store this step's keys and values into the paged KV cache at their slots."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fw_kernels.common import check_cache, check_device, check_dtype, check_last_dim_contiguous
from fw_kernels.kv_codes import store_kv_rows


@triton.jit
def _write_kv_kernel(
    key_ptr, value_ptr, key_cache_ptr, value_cache_ptr, slot_ptr,
    stride_kt, stride_kh, stride_vt, stride_vh,
    stride_kcb, stride_kcs, stride_kch, stride_vcb, stride_vcs, stride_vch,
    NUM_KV_HEADS: tl.constexpr, HEAD_SIZE: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # One program per token, all of its KV heads at once: on the interpreter every
    # program costs Python overhead, on the GPU [heads, head_size] is a small tile anyway.
    token = tl.program_id(0)
    slot = tl.load(slot_ptr + token).to(tl.int64)
    if slot < 0:  # padding token: nothing to store
        return
    block = slot // BLOCK_SIZE
    offset = slot % BLOCK_SIZE
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_h[:, None] < NUM_KV_HEADS) & (offs_d[None, :] < HEAD_SIZE)

    k = tl.load(key_ptr + token * stride_kt + offs_h[:, None] * stride_kh + offs_d[None, :], mask=mask)
    v = tl.load(value_ptr + token * stride_vt + offs_h[:, None] * stride_vh + offs_d[None, :], mask=mask)
    k_dst = key_cache_ptr + block * stride_kcb + offset * stride_kcs + offs_h[:, None] * stride_kch + offs_d[None, :]
    v_dst = value_cache_ptr + block * stride_vcb + offset * stride_vcs + offs_h[:, None] * stride_vch + offs_d[None, :]
    tl.store(k_dst, k, mask=mask)
    tl.store(v_dst, v, mask=mask)


def write_kv(
    key: torch.Tensor,
    value: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
) -> None:
    """Copy ``key``/``value`` [T, num_kv_heads, head_size] into the caches
    [num_blocks, block_size, num_kv_heads, head_size] at ``slot_mapping`` [T]
    (``block * block_size + offset``). A negative slot marks a padding token and is skipped.
    """
    if key.dim() != 3 or key.shape != value.shape:
        raise ValueError(f"key and value must both be [T, num_kv_heads, head_size]; got "
                         f"{tuple(key.shape)} and {tuple(value.shape)}")
    num_tokens, num_kv_heads, head_size = key.shape
    if slot_mapping.shape != (num_tokens,):
        raise ValueError(f"slot_mapping must be [{num_tokens}], got {tuple(slot_mapping.shape)}")
    check_dtype("key_cache", key_cache)
    check_dtype("key", key, key_cache.dtype)
    check_dtype("value", value, key_cache.dtype)
    block_size = check_cache(key_cache, value_cache, num_kv_heads, head_size)
    check_last_dim_contiguous(key=key, value=value, key_cache=key_cache, value_cache=value_cache)
    check_device(key, value, key_cache, value_cache, slot_mapping)
    if num_tokens == 0:
        return
    _write_kv_kernel[(num_tokens,)](
        key, value, key_cache, value_cache, slot_mapping,
        key.stride(0), key.stride(1), value.stride(0), value.stride(1),
        key_cache.stride(0), key_cache.stride(1), key_cache.stride(2),
        value_cache.stride(0), value_cache.stride(1), value_cache.stride(2),
        NUM_KV_HEADS=num_kv_heads, HEAD_SIZE=head_size, BLOCK_SIZE=block_size,
        BLOCK_H=triton.next_power_of_2(num_kv_heads), BLOCK_D=triton.next_power_of_2(head_size),
    )


@triton.jit
def _write_kv_quant_kernel(
    key_ptr, value_ptr, key_cache_ptr, value_cache_ptr, slot_ptr,
    stride_kt, stride_kh, stride_vt, stride_vh, stride_cb, stride_cs, stride_ch,
    NUM_KV_HEADS: tl.constexpr, HEAD_SIZE: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr, KV_KIND: tl.constexpr, DYNAMIC: tl.constexpr,
):
    token = tl.program_id(0)
    slot = tl.load(slot_ptr + token).to(tl.int64)
    if slot < 0:
        return
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_h[:, None] < NUM_KV_HEADS) & (offs_d[None, :] < HEAD_SIZE)
    rows = (slot // BLOCK_SIZE) * stride_cb + (slot % BLOCK_SIZE) * stride_cs + offs_h * stride_ch
    k = tl.load(key_ptr + token * stride_kt + offs_h[:, None] * stride_kh + offs_d[None, :], mask=mask, other=0.0)
    v = tl.load(value_ptr + token * stride_vt + offs_h[:, None] * stride_vh + offs_d[None, :], mask=mask, other=0.0)
    store_kv_rows(k.to(tl.float32), key_cache_ptr, rows, offs_d, mask, HEAD_SIZE, KV_KIND, DYNAMIC)
    store_kv_rows(v.to(tl.float32), value_cache_ptr, rows, offs_d, mask, HEAD_SIZE, KV_KIND, DYNAMIC)


def write_kv_quant(key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor,
                   kind: int, dynamic: bool) -> None:
    """Quantize and store ``key``/``value`` [T, num_kv_heads, head_size] at ``slot_mapping``
    of a quantized cache [2, num_blocks, num_kv_heads, block_size, head_size + 4]
    (``fw.attention.kv_format``; ``kind`` 1 int8, 2 fp8 e4m3, ``dynamic`` fp8 scales per
    row). A negative slot is skipped."""
    num_tokens, num_kv_heads, head_size = key.shape
    if kv_cache.dim() != 5 or kv_cache.shape[2] != num_kv_heads or kv_cache.shape[4] != head_size + 4:
        raise ValueError(f"kv_cache must be [2, num_blocks, {num_kv_heads}, block_size, {head_size + 4}], got "
                         f"{tuple(kv_cache.shape)}")
    check_last_dim_contiguous(key=key, value=value, kv_cache=kv_cache)
    check_device(key, value, kv_cache, slot_mapping)
    if num_tokens == 0:
        return
    _write_kv_quant_kernel[(num_tokens,)](
        key, value, kv_cache[0], kv_cache[1], slot_mapping,
        key.stride(0), key.stride(1), value.stride(0), value.stride(1),
        kv_cache.stride(1), kv_cache.stride(3), kv_cache.stride(2),
        NUM_KV_HEADS=num_kv_heads, HEAD_SIZE=head_size, BLOCK_SIZE=kv_cache.shape[3],
        BLOCK_H=triton.next_power_of_2(num_kv_heads), BLOCK_D=triton.next_power_of_2(head_size),
        KV_KIND=kind, DYNAMIC=dynamic,
    )
