"""Plain-torch twins of the quantized KV cache's write and read (``fw.attention.kv_format``
describes the rows: ``head_size`` one-byte codes, then a float32 scale).

``quantize`` is the arithmetic of ``cpu/kv_quant.c``, operation for operation in float32,
so both store the same bytes; ``dequantize_cache`` gives the float32 keys and values that
every kernel's attention is defined over. ``kind`` is ``"int8"`` or ``"fp8_e4m3"``.
"""

from __future__ import annotations

import torch

SCALE_BYTES = 4
INT8_MAX = 127.0
FP8_MAX = 448.0


def quantize(x: torch.Tensor, kind: str, dynamic: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """x [..., D] -> (codes uint8 [..., D], scales float32 [...]), a scale per row."""
    x = x.float()
    amax = x.abs().amax(-1)
    top = amax.new_tensor(INT8_MAX if kind == "int8" else FP8_MAX)
    if kind == "int8" or dynamic:
        # tensor by tensor: torch computes a Python number divided by a tensor as a
        # reciprocal times the number, which rounds differently from C's division
        scale = amax / top
        inv = torch.where(amax > 0, top / amax, torch.zeros_like(amax))
    else:
        scale = torch.ones_like(amax)
        inv = scale
    y = torch.minimum(torch.maximum(x * inv[..., None], -top), top)
    if kind == "int8":
        codes = torch.round(y).to(torch.int8).view(torch.uint8)
    else:
        codes = y.to(torch.float8_e4m3fn).view(torch.uint8)
    return codes, scale


def dequantize(codes: torch.Tensor, scales: torch.Tensor, kind: str) -> torch.Tensor:
    """codes [..., D] (int8 or uint8 storage) and scales [...] -> float32 [..., D]."""
    if kind == "int8":
        values = codes.view(torch.int8).float()
    else:
        values = codes.contiguous().view(torch.uint8).view(torch.float8_e4m3fn).float()
    return values * scales[..., None]


def rows(cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A quantized cache [..., D + 4] as its codes [..., D] and float32 scales [...] (views)."""
    head_size = cache.shape[-1] - SCALE_BYTES
    return cache[..., :head_size], cache[..., head_size:].view(torch.float32)[..., 0]


def write_kv(key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor,
             kind: str, dynamic: bool = True) -> None:
    """Store key/value [T, kv_heads, D] at ``slot_mapping`` (negative: skipped) of the
    quantized cache [2, blocks, kv_heads, block_size, D + 4]."""
    keep = slot_mapping >= 0
    slots = slot_mapping[keep].long()
    block_size = kv_cache.shape[3]
    by_token = kv_cache.view(torch.uint8).transpose(2, 3)  # [2, blocks, block_size, kv_heads, D + 4]
    for side, tensor in enumerate((key[keep], value[keep])):
        codes, scales = quantize(tensor, kind, dynamic)
        row = torch.cat([codes, scales[..., None].contiguous().view(torch.uint8)], dim=-1)
        by_token[side, slots // block_size, slots % block_size] = row


def dequantize_cache(kv_cache: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The float32 key and value caches [blocks, block_size, kv_heads, D] (the unquantized
    layout) a quantized cache [2, blocks, kv_heads, block_size, D + 4] holds."""
    codes, scales = rows(kv_cache.view(torch.uint8))
    values = dequantize(codes, scales, kind).transpose(2, 3)
    return values[0], values[1]
