"""Triton helpers for the quantized KV cache (``fw.attention.kv_format``): a row is
``HEAD_SIZE`` one-byte codes (int8, or float8 e4m3 bits) followed by its float32 scale,
and a value is ``code * scale``. The arithmetic is ``fw_kernels.kv_quant``'s and
``cpu/kv_quant.c``'s: the same bytes under the interpreter (CUDA's float32 division may
round the last bit of a scale differently).

``KV_KIND``: 0 the model's dtype (plain loads), 1 int8, 2 fp8 e4m3.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _round_even(x):
    """x rounded to the nearest integer, ties to even (rintf's rounding)."""
    r = tl.floor(x + 0.5)
    tie = (r - x) == 0.5
    odd = (r - 2.0 * tl.floor(r * 0.5)) == 1.0
    return tl.where(tie & odd, r - 1.0, r)


@triton.jit
def load_kv(cache_ptr, rows, offs_d, mask, HEAD_SIZE: tl.constexpr, KV_KIND: tl.constexpr):
    """The [rows, d] tile at cache_ptr + rows[:, None] + offs_d[None, :] as float32 values."""
    if KV_KIND == 0:
        return tl.load(cache_ptr + rows[:, None] + offs_d[None, :], mask=mask, other=0.0).to(tl.float32)
    codes = tl.load(cache_ptr + rows[:, None] + offs_d[None, :], mask=mask, other=0)
    scale = tl.load((cache_ptr + rows + HEAD_SIZE).to(tl.pointer_type(tl.float32)), mask=tl.max(mask.to(tl.int32), 1) > 0,
                    other=0.0)
    if KV_KIND == 1:
        values = codes.to(tl.float32)
    else:
        c = codes.to(tl.int32) & 255
        e = (c >> 3) & 15
        m = (c & 7).to(tl.float32)
        magnitude = tl.where(e == 0, m * 0.001953125, (1.0 + m * 0.125) * tl.exp2((e - 7).to(tl.float32)))
        values = tl.where((c & 128) != 0, -magnitude, magnitude)
    return values * scale[:, None]


@triton.jit
def store_kv_rows(x, dst_ptr, rows, offs_d, mask, HEAD_SIZE: tl.constexpr, KV_KIND: tl.constexpr,
                  DYNAMIC: tl.constexpr):
    """Quantize x [rows, d] (float32, masked entries 0) row by row and store each row's
    codes at dst_ptr + rows[:, None] + offs_d and its scale after them."""
    row_mask = tl.max(mask.to(tl.int32), 1) > 0
    amax = tl.max(tl.abs(x), 1)
    if KV_KIND == 1:
        scale = amax / 127.0
        inv = tl.where(amax > 0, 127.0 / tl.where(amax > 0, amax, 1.0), 0.0)
        y = tl.minimum(tl.maximum(x * inv[:, None], -127.0), 127.0)
        codes = _round_even(y).to(tl.int8)
    else:
        if DYNAMIC:
            scale = amax / 448.0
            inv = tl.where(amax > 0, 448.0 / tl.where(amax > 0, amax, 1.0), 0.0)
        else:
            scale = amax * 0.0 + 1.0
            inv = scale
        y = tl.minimum(tl.maximum(x * inv[:, None], -448.0), 448.0)
        bits = y.to(tl.int32, bitcast=True)
        sign = (bits >> 24) & 128
        a = tl.abs(y)
        magnitude = bits & 0x7FFFFFFF
        rounded = (magnitude + 0x7FFFF + ((magnitude >> 20) & 1)) & -1048576  # 3 mantissa bits, ties to even
        normal = tl.minimum((((rounded >> 23) - 120) << 3) | ((rounded >> 20) & 7), 0x7E)
        subnormal = _round_even(a * 512.0).to(tl.int32)
        codes = (tl.where(a < 0.015625, subnormal, normal) | sign).to(tl.uint8)
    tl.store(dst_ptr + rows[:, None] + offs_d[None, :], codes, mask=mask)
    tl.store((dst_ptr + rows + HEAD_SIZE).to(tl.pointer_type(tl.float32)), scale, mask=row_mask)


def kv_kind_of(cache) -> int:
    """A cache tensor's KV_KIND from its storage dtype (fw.attention.kv_format)."""
    import torch

    return {torch.int8: 1, torch.uint8: 2}.get(cache.dtype, 0)
