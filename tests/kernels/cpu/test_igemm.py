"""The W8A8 GEMM for batches: 8-bit weights per output row hold each row within half a
level, and the kernel computes exactly what its quantization of the inputs says, the
same for a row whatever the batch around it."""

from __future__ import annotations

import pytest
import torch

from fw_kernels import cpu
from fw_kernels.cpu import packing

pytestmark = pytest.mark.skipif(not cpu.int8_gemm_available(),
                                reason="fw's int8 GEMM is not built on this CPU (it needs AVX512-VNNI and BF16)")


def quantized_reference(x: torch.Tensor, panels: torch.Tensor, scales: torch.Tensor, out_features: int,
                        bias: torch.Tensor | None) -> torch.Tensor:
    """The kernel's arithmetic in float64: x rounded to int8 per group of 32 (scale
    max|x| / 127, ties to even), exact integer dot products per group, scaled per group,
    then by each weight row's scale."""
    groups = x.float().view(x.shape[0], -1, 32)
    top = groups.abs().amax(-1, keepdim=True)
    inverse = torch.where(top > 0, torch.tensor(127.0) / top, torch.zeros_like(top))
    levels = (groups * inverse).round()
    weight_levels = packing.unpack_int8_panels(panels, torch.ones_like(scales), out_features).double()
    dots = torch.einsum("rgk,ngk->rgn", levels.double(), weight_levels.view(out_features, -1, 32))
    out = (dots * (top.double() / 127)).sum(1) * scales[:out_features].double()
    return out if bias is None else out + bias.double()


def test_rows_come_back_within_half_a_level():
    weight = torch.randn(70, 96) * torch.rand(70, 1)
    weight[3] = 0  # an all-zero row keeps scale 0
    panels, scales = packing.pack_int8_panels(weight)
    assert panels.shape == (3, 96 // 4, packing.PANEL, 4) and scales.shape == (96,)
    assert scales[3] == 0 and (scales[70:] == 0).all()  # the padded rows
    error = (packing.unpack_int8_panels(panels, scales, 70) - weight).abs()
    assert (error <= scales[:70, None] / 2 + 1e-7).all()


@pytest.mark.parametrize("rows", [1, 5, 6, 7, 13, 200])
@pytest.mark.parametrize("out_features", [5, 32, 70])
def test_kernel_computes_its_quantized_product(rows, out_features):
    gen = torch.Generator().manual_seed(rows * 100 + out_features)
    weight = torch.randn(out_features, 96, generator=gen) * 0.1
    bias = torch.randn(out_features, generator=gen).bfloat16()
    wide = torch.randn(rows, 100, generator=gen).bfloat16()
    x = wide[:, :96]  # rows may be strided
    x[0, :32] = 0  # an all-zero group
    panels, scales = packing.pack_int8_panels(weight)
    expected = quantized_reference(x, panels, scales, out_features, bias)
    out = cpu.int8_gemm(x, panels, scales, bias, out_features, float_output=True)
    assert out.shape == (rows, out_features) and out.dtype == torch.float32
    assert (out.double() - expected).abs().max() <= 1e-5 * (1 + expected.abs().max())
    rounded = cpu.int8_gemm(x, panels, scales, bias, out_features)
    assert rounded.dtype == torch.bfloat16 and torch.equal(rounded, out.bfloat16())


def test_a_row_does_not_depend_on_its_batch():
    weight = torch.randn(300, 576) * 0.05
    panels, scales = packing.pack_int8_panels(weight)
    x = torch.randn(200, 576).bfloat16()
    batch = cpu.int8_gemm(x, panels, scales, None, 300)
    for row in (0, 7, 150, 199):
        assert torch.equal(cpu.int8_gemm(x[row:row + 1], panels, scales, None, 300)[0], batch[row])


def test_error_against_the_exact_product_is_small():
    weight = torch.randn(256, 576) * 0.05
    x = torch.randn(16, 576).bfloat16()
    exact = x.float() @ weight.t()
    out = cpu.int8_gemm(x, *packing.pack_int8_panels(weight), None, 256, float_output=True)
    assert (out - exact).norm() < 0.02 * exact.norm()
