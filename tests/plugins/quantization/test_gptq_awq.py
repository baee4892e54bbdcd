"""GPTQ and AWQ tensors, packed here by the test's own packers (tests/quantized_checkpoints.py),
decoded by fw: the dequantized weights equal the reference exactly; on fw's int4 grid the
levels and scales come back exactly and the minimum within its stated float16 bound; with
act-order the min-max repacking stays within its stated bound."""

from __future__ import annotations

import pytest
import torch

from fw.errors import ModelLoadError
from fw_builtins.quantization.awq import unpack_awq
from fw_builtins.quantization.checkpoint import read_quantization_config
from fw_builtins.quantization.gptq import FormatError, unpack_gptq
from fw_builtins.quantization.int4_groups import (grid_error_bound, int4_grid, levels_on_grid, pack_on_grid,
                                                  requantization_error_bound)
from fw_kernels.cpu import packing
from tests.quantized_checkpoints import dequantize, pack_awq, pack_gptq, quantize_groups

OUT, IN = 40, 256  # outputs: a multiple of 8 (the packing) but not of packing.BLOCK * 8


def quantized(group_size: int, *, symmetric=False, act_order=False, v1=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(OUT, IN, generator=gen) * 0.05 + 0.01
    size = IN if group_size == -1 else group_size
    g_idx = torch.arange(IN) // size
    if act_order:
        g_idx = g_idx[torch.randperm(IN, generator=gen)]
    levels, zeros, scales = quantize_groups(weight, g_idx, IN // size, symmetric=symmetric, v1_zeros=v1)
    return levels, zeros, scales, g_idx


def gptq(group_size, *, symmetric=False, act_order=False, v1=True):
    levels, zeros, scales, g_idx = quantized(group_size, symmetric=symmetric, act_order=act_order, v1=v1)
    qweight, qzeros = pack_gptq(levels, zeros, v1_zeros=v1)
    groups = unpack_gptq(torch.from_numpy(qweight), torch.from_numpy(qzeros), torch.from_numpy(scales),
                         g_idx.to(torch.int32), checkpoint_format="gptq" if v1 else "gptq_v2")
    return groups, dequantize(levels, zeros, scales, g_idx), levels


def awq(group_size):
    levels, zeros, scales, g_idx = quantized(group_size, v1=False)
    qweight, qzeros = pack_awq(levels, zeros)
    groups = unpack_awq(torch.from_numpy(qweight), torch.from_numpy(qzeros), torch.from_numpy(scales),
                        group_size=group_size)
    return groups, dequantize(levels, zeros, scales, g_idx), levels


CASES = {
    "gptq-sym-32": lambda: gptq(32, symmetric=True),
    "gptq-asym-64": lambda: gptq(64),
    "gptq-asym-128": lambda: gptq(128),
    "gptq-per-channel": lambda: gptq(-1),
    "gptq_v2-asym-128": lambda: gptq(128, v1=False),
    "awq-32": lambda: awq(32),
    "awq-64": lambda: awq(64),
    "awq-128": lambda: awq(128),
}


@pytest.mark.parametrize("case", [*CASES, "gptq-act-order"])
def test_dequantized_weights_equal_the_reference(case):
    groups, reference, levels = (CASES[case] if case in CASES else lambda: gptq(64, act_order=True))()
    assert torch.equal(groups.levels, torch.from_numpy(levels).to(torch.uint8))
    assert torch.equal(groups.dequantize(), reference)


@pytest.mark.parametrize("case", CASES)
def test_the_int4_grid_keeps_levels_and_scales_and_bounds_the_minimum(case):
    groups, reference, levels = CASES[case]()
    grid = int4_grid(groups)
    assert grid is not None
    # The checkpoint's levels come back from the weights as the model holds them (bf16).
    assert torch.equal(levels_on_grid(reference.to(torch.bfloat16), grid), torch.from_numpy(levels).to(torch.uint8))
    blocks = pack_on_grid(reference.to(torch.bfloat16), grid)
    served = packing.unpack_int4(*blocks, OUT)
    error = (served - reference).abs()
    assert (error <= grid_error_bound(groups)).all(), error.max()
    step = groups.scales[:, groups.group_of].float().t().abs().t()
    assert (error <= step / 128).all()  # the module docstring's bound: 1/128 of a level
    if case.startswith("gptq-sym"):
        assert torch.equal(served, reference)  # -8 * scale is a float16: nothing rounds


def test_on_a_full_range_grid_the_layout_is_packing_pack_int4s():
    # Where min-max packing finds the same grid (levels 0 and 15 in every group of 32),
    # both packers give the same bytes: pack_on_grid writes fw's int4 layout.
    groups, reference, _ = gptq(32)
    levels = groups.levels.clone().view(OUT, IN // 32, 32)
    levels[..., 0], levels[..., 1] = 0, 15
    full = type(groups)(levels.view(OUT, IN), groups.zeros, groups.scales, groups.group_of)
    weight = full.dequantize()
    ours, theirs = pack_on_grid(weight, int4_grid(full)), packing.pack_int4(weight)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def test_act_order_has_no_grid_and_repacks_within_the_stated_bound():
    groups, reference, _ = gptq(64, act_order=True)
    assert int4_grid(groups) is None
    held = reference.to(torch.bfloat16)  # the model's weights
    served = packing.unpack_int4(*packing.pack_int4(held), OUT)
    bound = requantization_error_bound(held) + 2.0**-8 * reference.abs()
    assert ((served - reference).abs() <= bound).all()


def test_a_group_size_that_splits_fw_groups_has_no_grid():
    assert int4_grid(gptq(16)[0]) is None


def test_shapes_that_do_not_fit_are_named():
    levels, zeros, scales, g_idx = quantized(64)
    qweight, qzeros = (torch.from_numpy(a) for a in pack_gptq(levels, zeros, v1_zeros=True))
    scales = torch.from_numpy(scales)
    with pytest.raises(FormatError, match=r"shapes do not fit: qweight \(32, 40\)"):
        unpack_gptq(qweight, qzeros[:, :2], scales)
    with pytest.raises(FormatError, match="g_idx"):
        unpack_gptq(qweight, qzeros, scales, torch.full((IN,), 9))
    with pytest.raises(FormatError, match="must be int32"):
        unpack_gptq(qweight.to(torch.int64), qzeros, scales)
    with pytest.raises(FormatError, match="group size 32"):
        unpack_awq(torch.zeros(IN, OUT // 8, dtype=torch.int32), torch.zeros(4, OUT // 8, dtype=torch.int32),
                   torch.zeros(4, OUT, dtype=torch.float16), group_size=32)


@pytest.mark.parametrize("config, message", [
    ({"quant_method": "fp8"}, "method 'fp8' is not one fw can load"),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "method 'bitsandbytes'"),
    ({"quant_method": "gptq", "bits": 8, "group_size": 128}, "gptq with 8 bits"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128, "checkpoint_format": "marlin"}, "'marlin'"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"}, "awq version 'gemv'"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": False}, "zero_point: false"),
])
def test_unsupported_quantization_configs_are_named(config, message):
    with pytest.raises(ModelLoadError, match=f"^config.json: quantization_config: .*{message}"):
        read_quantization_config(config, "config.json")


def test_autoawq_spellings_are_read():
    spec = read_quantization_config({"quant_method": "awq", "w_bit": 4, "q_group_size": 64, "version": "GEMM",
                                     "zero_point": True}, "config.json")
    assert (spec.method, spec.group_size, spec.checkpoint_format) == ("awq", 64, "gemm")
