"""Plain bf16 linears on the CPU run from a repacked copy of their weight: fw's own GEMM
where the CPU has AVX512-BF16 (float32 accumulation, in its own order), else oneDNN's
(the same sums as F.linear)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fw.layers.linear import Linear
from fw.layers.packed import DensePanels, OneDNNWeight
from fw_kernels import cpu


@pytest.fixture(params=["fw-dense", "onednn"])
def route(request, monkeypatch):
    if request.param == "onednn":
        monkeypatch.setattr(cpu, "dense_available", lambda: False)
    elif not cpu.dense_available():
        pytest.skip("fw's dense bf16 GEMM is not built on this CPU")
    return request.param


@pytest.mark.parametrize("bias", [False, True])
def test_packed_bf16_linear_matches_f_linear(route, bias):
    layer = Linear(576, 960, bias=bias, dtype=torch.bfloat16)
    nn.init.normal_(layer.weight, std=0.02)
    if bias:
        nn.init.normal_(layer.bias)
    dense = layer.weight.data.clone()
    layer.post_load()
    assert [type(layout) for layout in layer.packed.layouts] == [DensePanels if route == "fw-dense" else OneDNNWeight]
    assert layer.weight.numel() == 0  # the packed copy replaced it
    for rows in (1, 7, 9, 64):
        x = torch.randn(rows, 576, dtype=torch.bfloat16)
        expected = torch.nn.functional.linear(x, dense, layer.bias)
        out = layer(x)
        if route == "onednn":
            assert torch.equal(out, expected)
        else:  # one bf16 rounding of a float32 sum, summed in another order
            assert (out.float() - expected.float()).abs().max() <= 0.01 * expected.float().abs().max()


def test_odd_input_sizes_keep_the_other_route():
    layer = Linear(33, 8, dtype=torch.bfloat16)
    layer.post_load()
    assert [type(layout) for layout in layer.packed.layouts] == [OneDNNWeight]
    x = torch.randn(2, 33, dtype=torch.bfloat16)
    assert layer(x).shape == (2, 8)
