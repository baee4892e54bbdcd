"""Quantized matrices as a checkpoint stores them, and as fw's block layouts hold them.

A loader that reads a quantized file (GGUF's block types) yields a ``QuantizedMatrix`` for
such a weight instead of a tensor: it dequantizes to exactly the file's values (what a
plain ``--quantization none`` model loads) and converts to ``GroupedLevels``, the integer
levels with a scale and minimum per group of 32 inputs that fw's ``Int4Blocks`` and
``Int8Blocks`` layouts are made of, so a quantization method can serve the file's own
levels without inflating them to floats. A type whose levels do not fit those layouts
(6-bit levels under two scales per group, say) is re-quantized by its converter, which
states its error bound.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import torch

from fw.layers.packed.layout import PackedLayout
from fw.layers.packed.quantized import Int4Blocks, Int8Blocks
from fw_kernels.cpu import packing

GROUP = packing.GROUP


@dataclass
class GroupedLevels:
    """``w = level * scale + minimum`` for each group of 32 inputs of a row: levels uint8
    [out, in] (0..15 with ``bits`` 4, 0..255 with 8) and float16 (scale, minimum)
    [out, in / 32, 2]."""

    levels: torch.Tensor
    params: torch.Tensor
    bits: int

    def __post_init__(self):
        rows, cols = self.levels.shape
        if self.bits not in (4, 8) or self.params.shape != (rows, cols // GROUP, 2) or cols % GROUP:
            raise ValueError(f"inconsistent grouped levels: levels {tuple(self.levels.shape)}, "
                             f"params {tuple(self.params.shape)}, {self.bits} bits")

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.levels.shape)

    def dequantize(self) -> torch.Tensor:
        """The float32 matrix (float16 parameters widened, one multiply-add per weight)."""
        params = self.params.float()
        grouped = self.levels.view(self.shape[0], -1, GROUP).float()
        return (grouped * params[..., :1] + params[..., 1:]).flatten(1)

    @classmethod
    def cat(cls, parts: Sequence["GroupedLevels"]) -> "GroupedLevels":
        """The rows of ``parts`` stacked; 4-bit levels are valid 8-bit ones (same scale and
        minimum), so a mixed stack is 8-bit and still exact."""
        return cls(torch.cat([p.levels for p in parts]), torch.cat([p.params for p in parts]),
                   max(p.bits for p in parts))

    def layout(self, max_rows: int | None = None) -> PackedLayout:
        """The block layout of fw's GEMV kernels holding exactly these levels, serving
        steps of up to ``max_rows`` rows (None: any)."""
        layout = Int4Blocks if self.bits == 4 else Int8Blocks
        return layout._from_parts(self.levels, self.params, max_rows, any_rows=max_rows is None)


class QuantizedMatrix(ABC):
    """A weight matrix ``[out, in]`` a checkpoint stores quantized, as its loader yields it.

    Model code passes it to ``Linear.load_weight`` (or ``fw.models.loading``), whose
    quantization method either keeps its levels or asks for the float values."""

    #: the checkpoint's name for the storage type (``"Q4_K"``)
    type_name: str
    shape: tuple[int, int]

    @abstractmethod
    def dequantize(self) -> torch.Tensor:
        """float32 [out, in]: exactly the values the file stands for."""

    @abstractmethod
    def grouped_levels(self) -> GroupedLevels:
        """The matrix as fw's block layouts hold it: exact where the type maps onto them,
        else re-quantized within the bound its converter states."""

    @abstractmethod
    def select_rows(self, index: torch.Tensor) -> "QuantizedMatrix":
        """The matrix of these output rows, in this order (rows are stored independently)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.type_name}, {self.shape[0]}x{self.shape[1]})"
