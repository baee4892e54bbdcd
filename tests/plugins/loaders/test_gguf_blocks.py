"""GGUF block types as fw's grouped levels, against gguf-py's dequantization of the same
bytes (an independent reading of the format): exact for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and
IQ4_NL; within the stated bound where a type's group parameters are rounded to float16
(Q4_K, Q5_K, IQ4_XS) or its values re-quantized to 8 bits (Q6_K and the rest)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import quantize

from fw_builtins.loaders.gguf_blocks import EXACT, ROUNDED_PARAMETERS, GGUFMatrix, readable

ROWS, COLS = 12, 512
#: where each type keeps its float16 super-block scales (random bytes there could be inf)
SCALES = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.IQ4_NL: [0],
          T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.IQ4_XS: [0], T.Q6_K: [208], T.Q2_K: [80, 82], T.Q3_K: [108]}
GEMV_TYPES = {T.Q4_0: 4, T.Q4_1: 4, T.Q4_K: 4}  # the rest are 8-bit levels


def random_matrix(qtype: T, seed: int = 0) -> GGUFMatrix:
    """Random bytes with small positive float16 scales: every bit pattern the format allows."""
    rng = np.random.default_rng(seed)
    block, size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(ROWS, COLS // block, size), dtype=np.uint8)
    for offset in SCALES[qtype]:
        scales = (rng.random((ROWS, COLS // block, 1)) * 0.02 + 1e-3).astype(np.float16)
        raw[..., offset:offset + 2] = scales.view(np.uint8)
    return GGUFMatrix(raw.reshape(ROWS, -1), qtype, (ROWS, COLS))


def quantized_matrix(qtype: T) -> GGUFMatrix:
    """Gaussian weights quantized by gguf-py, as a converter writes them."""
    values = np.random.default_rng(1).normal(0, 0.05, size=(ROWS, COLS)).astype(np.float32)
    return GGUFMatrix(quantize(values, qtype).reshape(ROWS, -1), qtype, (ROWS, COLS))


@pytest.mark.parametrize("qtype", EXACT, ids=lambda t: t.name)
def test_these_types_come_back_bit_for_bit(qtype):
    matrices = [random_matrix(qtype)] + ([quantized_matrix(qtype)] if qtype != T.IQ4_NL else [])
    for matrix in matrices:
        levels = matrix.grouped_levels()
        assert levels.bits == GEMV_TYPES.get(qtype, 8)
        assert torch.equal(levels.dequantize(), matrix.dequantize())


@pytest.mark.parametrize("qtype", ROUNDED_PARAMETERS, ids=lambda t: t.name)
def test_rounded_parameters_stay_within_the_stated_bound(qtype):
    """Each weight within 2**-11 * (level * |scale| + |minimum|) (+ 2**-24 for float16
    subnormals): the levels are the file's, the scale and minimum float16-rounded products.
    Here the bound is taken over the rounded parameters, which adds a factor 1 + 2**-10."""
    matrix = random_matrix(qtype)
    levels = matrix.grouped_levels()
    assert levels.bits == GEMV_TYPES.get(qtype, 8)
    params = levels.params.float()
    grouped = levels.levels.view(ROWS, -1, 32).float()
    offset = 128 if qtype == T.IQ4_XS else 0  # IQ4_XS stores table values + 128 with minimum -128 * scale
    magnitude = (grouped - offset).abs() * params[..., :1].abs() + (params[..., 1:] + offset * params[..., :1]).abs()
    bound = 2 ** -11 * (1 + 2 ** -10) * magnitude.flatten(1) + 2 ** -24
    error = (levels.dequantize() - matrix.dequantize()).abs()
    assert (error <= bound).all(), (error - bound).max()
    assert error.max() > 0  # the rounding is real: the bound is what is tested


@pytest.mark.parametrize("qtype", [T.Q6_K, T.Q2_K, T.Q3_K], ids=lambda t: t.name)
def test_requantized_types_stay_within_the_stated_bound(qtype):
    """8-bit absolute-max levels with a float16 scale s per group of 32: each weight within
    0.5 * s + 127 * 2**-11 * s of the file's."""
    matrix = random_matrix(qtype)
    levels = matrix.grouped_levels()
    scale = levels.params.float()[..., :1]
    assert torch.equal(levels.params.float()[..., 1:], -128 * scale)  # symmetric
    bound = ((0.5 + 127 * 2 ** -11) * scale).expand(-1, -1, 32).flatten(1)
    error = (levels.dequantize() - matrix.dequantize()).abs()
    assert (error <= bound + 1e-7).all()
    values = matrix.dequantize().view(ROWS, -1, 32).abs().amax(-1)
    assert (error.view(ROWS, -1, 32).amax(-1) <= values / 200).all()  # about 1/254 of the group's range


def test_rows_are_selected_whole_and_in_order():
    matrix = random_matrix(T.Q4_K)
    order = torch.tensor([3, 0, 11, 5])
    picked = matrix.select_rows(order)
    assert picked.shape == (4, COLS)
    assert torch.equal(picked.dequantize(), matrix.dequantize()[order])
    assert torch.equal(picked.grouped_levels().levels, matrix.grouped_levels().levels[order])


def test_types_gguf_py_cannot_read_are_known():
    assert readable(T.Q4_K) and readable(T.IQ4_NL)
    assert not readable(T.Q8_1)
