"""The quantized GEMV kernels and their weight layouts: what GGUF's Q4_1 and Q8_0 blocks
hold comes back exactly, and the kernels multiply by exactly what the layout holds."""

from __future__ import annotations

import ctypes

import pytest
import torch

from fw_kernels import cpu
from fw_kernels.cpu import packing

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")


def half(values: torch.Tensor) -> torch.Tensor:
    """GGUF stores block scales and minimums as float16."""
    return values.half().float()


def q4_1_blocks(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Weights as a Q4_1 block holds them: levels 0..15 (both ends used) times a scale, plus a minimum."""
    gen = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 16, (rows, cols // 32, 32), generator=gen)
    levels[..., 0], levels[..., 1] = 0, 15
    scale = half(torch.rand(rows, cols // 32, 1, generator=gen) * 0.01 + 0.001)
    low = half(-torch.rand(rows, cols // 32, 1, generator=gen) * 0.05)
    return (levels * scale + low).view(rows, cols)


def q8_0_blocks(rows: int, cols: int, seed: int = 0) -> torch.Tensor:
    """Weights as a Q8_0 block holds them: levels -127..127 (the largest magnitude used) times a scale."""
    gen = torch.Generator().manual_seed(seed)
    levels = torch.randint(-127, 128, (rows, cols // 32, 32), generator=gen)
    levels[..., 0] = 127
    return (levels * half(torch.rand(rows, cols // 32, 1, generator=gen) * 0.01 + 0.001)).view(rows, cols)


def test_q4_1_and_q8_0_blocks_come_back_exactly():
    w4, w8 = q4_1_blocks(10, 64), q8_0_blocks(10, 64)
    assert (packing.unpack_int4(*packing.pack_int4(w4), rows=10) - w4).abs().max() < 1e-6
    assert (packing.unpack_int8(*packing.pack_int8(w8), rows=10) - w8).abs().max() < 1e-6


def test_any_weights_come_back_within_half_a_level():
    weight = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    groups = weight.view(8, 2, 32)
    low, step = groups.amin(-1), (groups.amax(-1) - groups.amin(-1)) / 15
    # plus what rounding the scale and minimum to float16 moves a level by
    slack = 2.0 ** -11 * (low.abs() + 15 * step)
    error = (packing.unpack_int4(*packing.pack_int4(weight), rows=8) - weight).abs().view(8, 2, 32).amax(-1)
    assert (error <= step / 2 + slack).all()


def test_input_size_must_be_whole_groups():
    with pytest.raises(ValueError, match="multiple of 32"):
        packing.pack_int4(torch.randn(4, 48))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [1, 3, 4, 5, cpu.MAX_GEMV_ROWS, 21])
@pytest.mark.parametrize("out_features", [4, 13, 300])
def test_kernels_multiply_by_the_packed_weights(dtype, rows, out_features):
    gen = torch.Generator().manual_seed(rows)
    weight = torch.randn(out_features, 96, generator=gen) * 0.1
    x = torch.randn(rows, 96, generator=gen).to(dtype)
    bias = torch.randn(out_features, generator=gen).to(dtype)
    for pack, unpack, gemv in ((packing.pack_int4, packing.unpack_int4, cpu.int4_gemv),
                               (packing.pack_int8, packing.unpack_int8, cpu.int8_gemv)):
        blocks = pack(weight)
        expected = x.float() @ unpack(*blocks, rows=out_features).t() + bias.float()
        out = gemv(x, *blocks, bias, out_features)
        assert out.shape == (rows, out_features) and out.dtype == dtype
        # bf16 inputs are quantized to int8 per group of 32 (VNNI): ~0.4% each
        tolerance = 1e-5 if dtype == torch.float32 else 1.5e-2
        assert (out.float() - expected).abs().max() <= tolerance * (1 + expected.abs().max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_row_gets_the_same_result_in_a_step_of_any_size(dtype):
    """More rows than one pass takes go eight at a time over each cached tile of weights;
    a row's sums never depend on the rows beside it."""
    gen = torch.Generator().manual_seed(3)
    weight = torch.randn(70, 128, generator=gen) * 0.1
    x = torch.randn(37, 128, generator=gen).to(dtype)
    for pack, gemv in ((packing.pack_int4, cpu.int4_gemv), (packing.pack_int8, cpu.int8_gemv)):
        blocks = pack(weight)
        together = gemv(x, *blocks, None, 70)
        for row in (0, 8, 20, 36):
            assert torch.equal(gemv(x[row:row + 1], *blocks, None, 70), together[row:row + 1])


def test_input_rows_may_be_strided():
    weight = torch.randn(8, 64)
    wide = torch.randn(2, 100)
    x = wide[:, :64]
    blocks = packing.pack_int4(weight)
    expected = x @ packing.unpack_int4(*blocks, rows=8).t()
    assert torch.allclose(cpu.int4_gemv(x, *blocks, None, 8), expected, atol=1e-5)


def test_python_and_c_agree_on_the_row_limit():
    from fw_kernels.cpu.build import library

    fn = library().fw_max_gemv_rows
    fn.restype = ctypes.c_int64
    assert fn() == cpu.MAX_GEMV_ROWS


@pytest.mark.skipif(not cpu.dense_available(), reason="fw's dense bf16 GEMM is not built on this CPU")
@pytest.mark.parametrize("rows", [1, 8, 9, 21])
@pytest.mark.parametrize("out_features", [5, 32, 70])
def test_dense_gemm_multiplies_by_the_bf16_weights(rows, out_features):
    gen = torch.Generator().manual_seed(rows)
    weight = (torch.randn(out_features, 96, generator=gen) * 0.1).bfloat16()
    bias = torch.randn(out_features, generator=gen).bfloat16()
    wide = torch.randn(rows, 100, generator=gen).bfloat16()
    x = wide[:, :96]  # rows may be strided (an even stride)
    expected = x.float() @ weight.float().t() + bias.float()
    out = cpu.dense_gemm(x, packing.pack_bf16_panels(weight), bias, out_features)
    assert out.shape == (rows, out_features) and out.dtype == torch.bfloat16
    assert (out.float() - expected).abs().max() <= 0.01 * (1 + expected.abs().max())


@pytest.mark.skipif(not cpu.dense_available(), reason="fw's dense bf16 GEMM is not built on this CPU")
def test_float_output_keeps_the_unrounded_sums():
    weight = (torch.randn(40, 64) * 0.1).bfloat16()
    x = torch.randn(3, 64).bfloat16()
    rounded = cpu.dense_gemm(x, packing.pack_bf16_panels(weight), None, 40)
    exact = cpu.dense_gemm(x, packing.pack_bf16_panels(weight), None, 40, float_output=True)
    assert exact.dtype == torch.float32 and torch.equal(exact.bfloat16(), rounded)
    blocks = packing.pack_int8(weight.float())
    exact8 = cpu.int8_gemv(x, *blocks, None, 40, float_output=True)
    assert exact8.dtype == torch.float32 and torch.equal(exact8.bfloat16(), cpu.int8_gemv(x, *blocks, None, 40))
    blocks4 = packing.pack_int4(weight.float())  # a tensor-parallel shard's partial sums stay float32
    exact4 = cpu.int4_gemv(x, *blocks4, None, 40, float_output=True)
    assert exact4.dtype == torch.float32 and torch.equal(exact4.bfloat16(), cpu.int4_gemv(x, *blocks4, None, 40))
