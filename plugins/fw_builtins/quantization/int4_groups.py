"""Group-quantized 4-bit weights (GPTQ, AWQ) mapped onto fw's int4 layout.

GPTQ and AWQ store ``w[o, i] = (q[o, i] - z[o, g(i)]) * s[o, g(i)]``: levels q in
0..15, a zero point z and a float16 scale s per output row and group g(i) of input
columns (``QuantGroups``). fw's int4 layout (``fw_kernels.cpu.packing.pack_int4``) holds
per output row and group of 32 inputs ``w = level * scale + min`` with a float16 scale
and minimum. When every group of 32 inputs lies inside one quantization group (group
sizes 32, 64, 128 ... and no act-order shuffle), the mapping is

    level = q,  scale = s,  min = float16(-z * s)

Levels and scales come over exactly. The minimum is the one rounding: ``-z * s`` needs
up to 15 significant bits and float16 keeps 11, so

    |min - (-z * s)| <= 2**-11 * |z * s| <= |s| / 128   (z <= 16; 2**-25 for subnormals)

i.e. a weight moves by at most 1/128 of its own quantization step (``grid_error_bound``).

Otherwise (act-order: a group of 32 consecutive inputs mixes quantization groups, or a
group size that is not a multiple of 32) no such grid exists, and the weights are
handed on dequantized; fw's int4 method then packs them on its own min-max grid, within
``requantization_error_bound`` of them: half a level of each 32-group's range, plus the
float16 rounding of its scale and minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fw.model_loader.int4_grids import GROUP, Int4Grid
from fw_kernels.cpu import packing

#: float16's unit roundoff (11 significant bits)
FP16_EPS = 2.0**-11


@dataclass(frozen=True)
class QuantGroups:
    """A group-quantized 4-bit weight, unpacked: ``w = (levels - zeros[g]) * scales[g]``."""

    #: uint8 [out, in], 0..15
    levels: torch.Tensor
    #: int16 [out, groups] (GPTQ's v1 zero points reach 16)
    zeros: torch.Tensor
    #: float16 [out, groups]
    scales: torch.Tensor
    #: int64 [in]: the group of each input column
    group_of: torch.Tensor

    def dequantize(self) -> torch.Tensor:
        """The weight in float32 [out, in], exact: (levels - zeros) has at most 5 bits and
        the scale 11, so every product fits float32's 24."""
        zeros = self.zeros[:, self.group_of].float()
        scales = self.scales[:, self.group_of].float()
        return (self.levels.float() - zeros) * scales

    def contiguous_group_size(self) -> int | None:
        """G when input column i is in group i // G for all i (no act-order shuffle)."""
        columns, groups = self.levels.shape[1], self.scales.shape[1]
        if columns % groups:
            return None
        size = columns // groups
        expected = torch.arange(columns) // size
        return size if torch.equal(self.group_of.to(torch.int64), expected) else None


def int4_grid(groups: QuantGroups) -> Int4Grid | None:
    """The exact fw grid of ``groups`` (see the module docstring), or None where every
    group of 32 inputs does not lie in one quantization group."""
    size = groups.contiguous_group_size()
    if size is None or size % GROUP:
        return None
    repeat = size // GROUP
    scales = groups.scales.repeat_interleave(repeat, dim=1)
    mins = (-groups.zeros.float() * groups.scales.float()).to(torch.float16).repeat_interleave(repeat, dim=1)
    return Int4Grid(scales.contiguous(), mins.contiguous())


def levels_on_grid(weight: torch.Tensor, grid: Int4Grid) -> torch.Tensor:
    """uint8 [rows, in]: each weight's level on ``grid``, round((w - min) / scale).

    It gives back the checkpoint's level for any weight less than half a level from its
    grid point, which covers a GPTQ or AWQ weight after bfloat16 rounding (2**-8 of
    |w| <= 16 |s|: 1/16 of a level) and the minimum's float16 rounding (1/128)."""
    rows, columns = weight.shape
    grouped = weight.float().view(rows, columns // GROUP, GROUP)
    scales, mins = grid.scales.float()[..., None], grid.mins.float()[..., None]
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    return ((grouped - mins) / safe).round().clamp(0, 15).to(torch.uint8).view(rows, columns)


def pack_on_grid(weight: torch.Tensor, grid: Int4Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight`` on ``grid`` in ``packing.pack_int4``'s layout (that of ``Int4Blocks``):
    (uint8 [rows / BLOCK, groups, 4, BLOCK, 4], float16 [rows / BLOCK, groups, 2, BLOCK])."""
    params = torch.stack([grid.scales, grid.mins], dim=-1)
    return packing.pack_int4_parts(levels_on_grid(weight, grid), params)


def grid_error_bound(groups: QuantGroups) -> torch.Tensor:
    """float32 [out, in]: how far a weight on ``int4_grid(groups)`` may be from the exact
    dequantized one (the minimum's float16 rounding)."""
    zeros = groups.zeros[:, groups.group_of].float()
    scales = groups.scales[:, groups.group_of].float()
    return torch.clamp(FP16_EPS * (zeros * scales).abs(), min=2.0**-25)


def requantization_error_bound(weight: torch.Tensor) -> torch.Tensor:
    """float32 [out, in]: how far fw's min-max int4 packing (``packing.pack_int4``) may
    move each weight of ``weight``: half a level of its 32-group's range, the float16
    rounding of the scale over 15 levels, and that of the minimum."""
    rows, columns = weight.shape
    grouped = weight.float().view(rows, columns // GROUP, GROUP)
    low, high = grouped.amin(-1, keepdim=True), grouped.amax(-1, keepdim=True)
    step = (high - low) / 15
    largest = torch.maximum(low.abs(), high.abs())
    bound = step / 2 * (1 + 2 * FP16_EPS) + 15 * FP16_EPS * step + FP16_EPS * low.abs() + 2.0**-22 * largest
    return bound.expand_as(grouped).reshape(rows, columns)
