"""GGUF's quantized block types as fw's grouped levels (``fw.layers.packed.GroupedLevels``:
a level per weight, a float16 scale and minimum per group of 32 inputs), so a quantized
file is served from its own levels instead of being inflated to bf16.

Per type (ggml's block layouts; gguf-py's ``quants.py`` dequantizes the same bytes):

* exact, the file's values bit for bit: Q4_0 and Q4_1 (4-bit levels: ``Int4Blocks``);
  Q5_0, Q5_1, Q8_0 and IQ4_NL (their levels, or IQ4_NL's table values, fit in 8 bits:
  ``Int8Blocks``); a Q4_0 block's ``(q - 8) * d`` is level q, scale d, minimum -8d.
* exact levels, rounded parameters: Q4_K (4-bit), Q5_K and IQ4_XS (8-bit). Their groups
  of 32 take a 6-bit scale (and minimum) times a float16 super-block scale, a product
  float16 cannot always hold: each weight is within ``2**-11 * (level * |scale| +
  |minimum|)`` of the file's (plus ``2**-24`` where a parameter is a float16 subnormal).
* re-quantized: Q6_K (two 16-weight sub-blocks with their own scales share a group) and
  every other type gguf-py can dequantize (Q2_K, Q3_K, the IQ grids): the file's values,
  then 8-bit absolute-max levels per group of 32 with a float16 scale ``s``; each weight is
  within ``0.5 * s + 127 * 2**-11 * s`` of the file's (``s`` is about the group's
  largest magnitude / 127).

Types gguf-py cannot read (Q8_1, Q8_K, ...) are refused with their name.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import IQ4_NL, dequantize

from fw.layers.packed import GroupedLevels, QuantizedMatrix

from fw_builtins.loaders.gguf_dequant import dequantize_blocks

GROUP = 32
#: the types whose converter keeps the file's values exactly
EXACT = (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.IQ4_NL)
#: the types whose levels are kept and whose group parameters are rounded to float16
ROUNDED_PARAMETERS = (T.Q4_K, T.Q5_K, T.IQ4_XS)


def _f16(raw: np.ndarray) -> np.ndarray:
    """Little-endian float16 bytes [..., 2] -> float32 [...]."""
    return np.ascontiguousarray(raw).view(np.float16)[..., 0].astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """[..., 16] bytes -> [..., 32] levels: low nibbles, then high nibbles."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _high_bits(qh: np.ndarray, count: int) -> np.ndarray:
    """Little-endian uint32 bit fields [..., 4] -> bit i of each as [..., count] uint8."""
    bits = np.ascontiguousarray(qh).view(np.uint32)[..., :1] >> np.arange(count, dtype=np.uint32)
    return (bits & 1).astype(np.uint8)


def _levels(rows: int, levels: np.ndarray, scale: np.ndarray, minimum: np.ndarray, bits: int) -> GroupedLevels:
    """levels [rows, groups, 32], scale/minimum float32 [rows, groups] (rounded to float16)."""
    params = np.stack([scale, minimum], axis=-1).astype(np.float16)
    return GroupedLevels(torch.from_numpy(np.ascontiguousarray(levels.reshape(rows, -1), dtype=np.uint8)),
                         torch.from_numpy(np.ascontiguousarray(params)), bits)


def _blocks(raw: np.ndarray, qtype: T) -> np.ndarray:
    return raw.reshape(raw.shape[0], -1, GGML_QUANT_SIZES[qtype][1])


def _q4_0(raw):
    b = _blocks(raw, T.Q4_0)
    d = _f16(b[..., 0:2])
    return _levels(raw.shape[0], _nibbles(b[..., 2:18]), d, -8 * d, 4)


def _q4_1(raw):
    b = _blocks(raw, T.Q4_1)
    return _levels(raw.shape[0], _nibbles(b[..., 4:20]), _f16(b[..., 0:2]), _f16(b[..., 2:4]), 4)


def _q5(raw, qtype, offset):
    b = _blocks(raw, qtype)
    qh, qs = b[..., offset:offset + 4], b[..., offset + 4:offset + 20]
    return _nibbles(qs) | (_high_bits(qh, 32) << 4)


def _q5_0(raw):
    b = _blocks(raw, T.Q5_0)
    d = _f16(b[..., 0:2])
    return _levels(raw.shape[0], _q5(raw, T.Q5_0, 2), d, -16 * d, 8)


def _q5_1(raw):
    b = _blocks(raw, T.Q5_1)
    return _levels(raw.shape[0], _q5(raw, T.Q5_1, 4), _f16(b[..., 0:2]), _f16(b[..., 2:4]), 8)


def _q8_0(raw):
    b = _blocks(raw, T.Q8_0)
    d = _f16(b[..., 0:2])
    levels = (b[..., 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
    return _levels(raw.shape[0], levels, d, -128 * d, 8)


_IQ4_STORED = (np.array(IQ4_NL.kvalues, dtype=np.int16) + 128).astype(np.uint8)


def _iq4_nl(raw):
    b = _blocks(raw, T.IQ4_NL)
    d = _f16(b[..., 0:2])
    return _levels(raw.shape[0], _IQ4_STORED[_nibbles(b[..., 2:18])], d, -128 * d, 8)


def _k_scales(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K's 12 bytes -> the 8 sub-blocks' 6-bit scales and minimums (ggml's get_scale_min_k4)."""
    d, m, md = scales[..., 0:4], scales[..., 4:8], scales[..., 8:12]
    sc = np.concatenate([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    mn = np.concatenate([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return sc.astype(np.float32), mn.astype(np.float32)


def _k_quant(raw, qtype, levels_of):
    b = _blocks(raw, qtype)
    d, dmin = _f16(b[..., 0:2])[..., None], _f16(b[..., 2:4])[..., None]
    sc, mn = _k_scales(b[..., 4:16])
    return _levels(raw.shape[0], levels_of(b), (d * sc).reshape(raw.shape[0], -1),
                   -(dmin * mn).reshape(raw.shape[0], -1), 4 if qtype == T.Q4_K else 8)


def _q4_k_levels(b):
    """128 bytes per 256 weights: 4 chunks of 32 bytes, low nibbles one group, high the next."""
    qs = b[..., 16:144].reshape(*b.shape[:2], 4, 1, 32)
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-2).reshape(*b.shape[:2], 8, 32)


def _q5_k_levels(b):
    high = b[..., 16:48].reshape(*b.shape[:2], 1, 32) >> np.arange(8, dtype=np.uint8)[:, None]
    qs = b[..., 48:176].reshape(*b.shape[:2], 4, 1, 32)
    low = np.concatenate([qs & 0x0F, qs >> 4], axis=-2).reshape(*b.shape[:2], 8, 32)
    return low | ((high & 1) << 4)


def _iq4_xs(raw):
    b = _blocks(raw, T.IQ4_XS)
    d = _f16(b[..., 0:2])[..., None]
    high = np.ascontiguousarray(b[..., 2:4]).view(np.uint16)[..., :1] >> (2 * np.arange(8, dtype=np.uint16))
    low = b[..., 4:8][..., None] >> np.array([0, 4], dtype=np.uint8)
    sc = ((low.reshape(*b.shape[:2], 8) & 0x0F) | ((high.astype(np.uint8) & 0x03) << 4)).astype(np.float32) - 32
    qs = b[..., 8:136].reshape(*b.shape[:2], 8, 16)
    scale = (d * sc).reshape(raw.shape[0], -1)
    return _levels(raw.shape[0], _IQ4_STORED[_nibbles(qs)], scale, -128 * scale.astype(np.float16), 8)


def requantized(values: torch.Tensor) -> GroupedLevels:
    """8-bit absolute-max levels per group of 32 of float32 ``values`` [rows, cols]: scale
    ``s = f16(max |w| / 127)``, levels ``round(w / s)`` clipped to +-127 (stored + 128)."""
    rows = values.shape[0]
    grouped = values.view(rows, -1, GROUP)
    scale = (grouped.abs().amax(-1) / 127).to(torch.float16).float()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    levels = (grouped / safe[..., None]).round().clamp(-127, 127) + 128
    params = torch.stack([scale, -128 * scale], dim=-1).to(torch.float16)
    return GroupedLevels(levels.to(torch.uint8).view(rows, -1), params, 8)


CONVERTERS: dict[T, Callable[[np.ndarray], GroupedLevels]] = {
    T.Q4_0: _q4_0, T.Q4_1: _q4_1, T.Q5_0: _q5_0, T.Q5_1: _q5_1, T.Q8_0: _q8_0, T.IQ4_NL: _iq4_nl,
    T.Q4_K: lambda raw: _k_quant(raw, T.Q4_K, _q4_k_levels),
    T.Q5_K: lambda raw: _k_quant(raw, T.Q5_K, _q5_k_levels),
    T.IQ4_XS: _iq4_xs,
}


@functools.cache
def readable(qtype: T) -> bool:
    """Whether gguf-py can dequantize ``qtype`` (tried on one zero block)."""
    try:
        dequantize(np.zeros((1, GGML_QUANT_SIZES[qtype][1]), dtype=np.uint8), qtype)
    except NotImplementedError:
        return False
    return True


class GGUFMatrix(QuantizedMatrix):
    """One quantized 2-D GGUF tensor: its rows of raw blocks (a view of the file)."""

    def __init__(self, raw: np.ndarray, qtype: T, shape: tuple[int, int]):
        self.raw, self.qtype, self.shape, self.type_name = raw, qtype, tuple(shape), qtype.name

    def dequantize(self) -> torch.Tensor:
        fast = dequantize_blocks(np.ascontiguousarray(self.raw), self.qtype)  # Q4_0/Q4_1/Q8_0 in a few numpy ops
        values = fast if fast is not None else dequantize(self.raw, self.qtype)
        return torch.from_numpy(np.array(values.reshape(self.shape), dtype=np.float32, copy=True))

    def grouped_levels(self) -> GroupedLevels:
        if self.shape[1] % GROUP:
            raise ValueError(f"a {self.type_name} matrix of {self.shape[1]} columns is not whole groups of {GROUP}")
        convert = CONVERTERS.get(self.qtype)
        return convert(self.raw) if convert is not None else requantized(self.dequantize())

    def select_rows(self, index: torch.Tensor) -> "GGUFMatrix":
        rows = index.numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
        return GGUFMatrix(self.raw[rows], self.qtype, (len(rows), self.shape[1]))
