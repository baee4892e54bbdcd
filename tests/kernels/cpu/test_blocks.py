"""The block kernels (gemv.c over blocks.h's layout) as a GEMM for any number of rows: a
row's result is bit for bit the same alone or among 1 to 40 rows (what batch-invariant
serving rests on), and within the quantization bound of the dequantized weights' exact
product."""

from __future__ import annotations

import pytest
import torch

from fw_kernels import cpu
from fw_kernels.cpu import packing

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")

KINDS = {"int4": (packing.pack_int4, packing.unpack_int4, cpu.int4_gemv),
         "int8": (packing.pack_int8, packing.unpack_int8, cpu.int8_gemv)}
#: (out_features, in_features): rows not a multiple of the 16-row blocks, one to five groups
SHAPES = [(1, 32), (17, 96), (45, 160), (70, 64)]


def _case(kind: str, out_features: int, in_features: int, rows: int, dtype: torch.dtype, seed: int):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_features, in_features, generator=gen) * torch.rand(out_features, 1, generator=gen)
    weight[0, :32] = 0.0  # a group of zeros: scale 0
    x = (torch.randn(rows, in_features, generator=gen) * 3).to(dtype)
    x[0, :32] = 0  # an all-zero group of inputs
    bias = torch.randn(out_features, generator=gen).to(dtype)
    return KINDS[kind][0](weight), x, bias


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("out_features, in_features", SHAPES)
def test_m_rows_give_the_bits_of_m_single_row_calls(kind, out_features, in_features, dtype):
    blocks, x, bias = _case(kind, out_features, in_features, 40, dtype, seed=out_features * in_features)
    gemv = KINDS[kind][2]
    alone = torch.cat([gemv(x[r:r + 1], *blocks, bias, out_features, float_output=True) for r in range(40)])
    for rows in range(1, 41):
        together = gemv(x[:rows], *blocks, bias, out_features, float_output=True)
        assert torch.equal(together, alone[:rows]), f"{rows} rows"
    rounded = gemv(x, *blocks, bias, out_features)
    assert rounded.dtype == dtype and torch.equal(rounded, alone.to(dtype))


def _bound(x: torch.Tensor, weight: torch.Tensor, mins: torch.Tensor, quantized_inputs: bool) -> torch.Tensor:
    """How far the kernel may be from x @ weight.T: with int8 inputs, half an input level
    (max|x| / 254 per group of 32) times the levels' part of each weight (w - min; the
    minimum's term uses the float sum of x), plus float32 rounding of the sums."""
    magnitude = x.abs().double() @ weight.abs().double().t()
    bound = 1e-5 * (1 + magnitude)
    if quantized_inputs:
        top = x.double().view(x.shape[0], -1, 32).abs().amax(-1, keepdim=True)
        step = (top / 127).expand(-1, -1, 32).reshape(x.shape)
        bound = bound + (0.5 + 1e-4) * step @ (weight.double() - mins).abs().t()
    return bound


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rows", [1, 3, 8, 33])
def test_within_the_quantization_bound_of_the_exact_product(kind, rows, dtype):
    blocks, x, bias = _case(kind, 70, 160, rows, dtype, seed=rows)
    weight = KINDS[kind][1](*blocks, rows=70)
    mins = packing._deinterleave_params(blocks[1], 70)[..., 1].double().repeat_interleave(32, dim=1)
    exact = x.double() @ weight.double().t() + bias.double()
    out = KINDS[kind][2](x, *blocks, bias, 70, float_output=True).double()
    bound = _bound(x.float(), weight, mins, quantized_inputs=dtype == torch.bfloat16)
    assert ((out - exact).abs() <= bound).all(), ((out - exact).abs() / bound).max()


def test_float32_inputs_are_not_quantized():
    """float32 models multiply by the levels exactly (float32 rounding only)."""
    blocks, x, _ = _case("int4", 45, 160, 5, torch.float32, seed=7)
    exact = x.double() @ packing.unpack_int4(*blocks, rows=45).double().t()
    out = cpu.int4_gemv(x, *blocks, None, 45, float_output=True).double()
    assert (out - exact).abs().max() <= 1e-5 * (1 + exact.abs().max())


def test_the_layout_holds_16_rows_per_vector_lane_by_lane():
    """One 64-byte vector: 4 bytes of each of 16 rows; a row's group reads back in order."""
    weight = torch.arange(16 * 32, dtype=torch.float32).view(16, 32) % 16  # row r: levels 0..15 twice
    weight[:, 16:] = 15 - weight[:, 16:]
    packed, params = packing.pack_int4(weight)
    assert packed.shape == (1, 1, 4, 16, 4) and params.shape == (1, 1, 2, 16)
    bytes_, _ = packing.block_rows(packed, params, torch.tensor([3]))
    assert bytes_[0, 0].tolist() == [lo | (15 - lo) << 4 for lo in range(16)]
