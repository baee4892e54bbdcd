"""pack.c against packing.py's torch reference: the same bytes, for bfloat16 and float32
weights of awkward shapes (rows not a multiple of the block or panel) and values across
float16's range (subnormal scales, ties, zeros, groups of one value)."""

from __future__ import annotations

import pytest
import torch

from fw_kernels import cpu
from fw_kernels.cpu import packing

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")

PACKERS = [(packing.pack_int4, packing.pack_int4_torch), (packing.pack_int8, packing.pack_int8_torch),
           (packing.pack_int8_panels, packing.pack_int8_panels_torch)]


def weights(rows: int, cols: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen)
    scale = torch.logspace(-9, 3, rows).unsqueeze(1)  # rows from float16-subnormal steps to large ones
    w = w * scale
    if rows >= 4:
        w[0] = 0.0  # an all-zero row
        w[1, :32] = 0.25  # a constant group
        w[2] = torch.round(w[2] * 4) / 4  # ties in the level arithmetic
        w[3, ::7] = 1e-6  # float16 subnormals
    return w.to(dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("rows, cols", [(1, 32), (37, 64), (4, 576), (70, 96)])
@pytest.mark.parametrize("fast, reference", PACKERS, ids=["int4", "int8", "int8_panels"])
def test_the_same_bytes_as_the_torch_reference(fast, reference, rows, cols, dtype):
    w = weights(rows, cols, dtype, seed=rows * cols)
    for ours, theirs in zip(fast(w), reference(w)):
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        # Bytes, except that a minimum of 0 may come out as -0 or 0 where a group holds
        # both (the same number; which one torch's min picks is its own business).
        assert torch.equal(ours, theirs)


def test_non_contiguous_weights_and_unsupported_shapes_fall_back():
    w = torch.randn(64, 40)[:, :32]  # a view: packed from a contiguous copy
    assert all(torch.equal(a, b) for a, b in zip(packing.pack_int4(w), packing.pack_int4_torch(w)))
    w = torch.randn(8, 36)  # not a whole number of groups: the torch code (and its error) decides
    assert all(torch.equal(a, b) for a, b in zip(packing.pack_int8_panels(w), packing.pack_int8_panels_torch(w)))
    with pytest.raises(ValueError, match="not a multiple of 32"):
        packing.pack_int4(w)
