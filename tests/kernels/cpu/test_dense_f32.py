"""The float32 GEMM of fixed summation order: x @ W.T to float32's precision, every output
the same bits whatever the number of rows around it (torch's float32 linear is not: its
row 0 of a 1-row and of a 2-row product differ)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fw_kernels import cpu
from fw_kernels.cpu import packing

pytestmark = pytest.mark.skipif(not cpu.dense_f32_available(), reason="fw's CPU kernels could not be built here")


@pytest.mark.parametrize("out_features,in_features", [(70, 96), (32, 1), (576, 576), (5, 1537)])
def test_products_match_float64(out_features, in_features):
    weight = torch.randn(out_features, in_features)
    bias = torch.randn(out_features)
    x = torch.randn(19, in_features)
    panels = packing.pack_f32_panels(weight)
    assert torch.equal(packing.unpack_f32_panels(panels, out_features), weight)
    for b in (None, bias):
        out = cpu.dense_gemm_f32(x, panels, b, out_features)
        reference = F.linear(x.double(), weight.double(), None if b is None else b.double())
        torch.testing.assert_close(out, reference.float(), rtol=1e-5, atol=1e-5 * in_features ** 0.5)


def test_a_row_is_the_same_bits_in_any_batch():
    weight, x = torch.randn(100, 576), torch.randn(40, 576)
    panels = packing.pack_f32_panels(weight)
    alone = torch.cat([cpu.dense_gemm_f32(x[r:r + 1], panels, None, 100) for r in range(40)])
    for rows in (2, 7, 8, 9, 17, 40):
        assert torch.equal(cpu.dense_gemm_f32(x[:rows], panels, None, 100), alone[:rows])
    # a strided view of the rows computes the same
    wide = torch.randn(40, 600)
    wide[:, :576] = x
    assert torch.equal(cpu.dense_gemm_f32(wide[:, :576], panels, None, 100), alone)
