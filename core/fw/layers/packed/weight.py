"""PackedWeight: a matrix in the layouts its quantization method chose."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from fw.layers.packed.dense import DensePanels
from fw.layers.packed.layout import PackedLayout, RowRanges
from fw.layers.packed.quantized import Int4Blocks, Int8Blocks, Int8Panels
from fw_kernels.cpu.projection import Projection


class PackedWeight:
    """A matrix in one or more layouts, the first that serves a step's row count running it.

    ``layouts`` go from the smallest ``max_rows`` to the last, which must serve any count.
    """

    def __init__(self, layouts: Sequence[PackedLayout]):
        if not layouts or layouts[-1].max_rows is not None:
            raise ValueError("the last layout of a packed weight must serve any number of rows")
        shapes = {(layout.out_features, layout.in_features) for layout in layouts}
        if len(shapes) != 1:
            raise ValueError(f"the layouts of one packed weight disagree on its shape: {sorted(shapes)}")
        self.layouts = list(layouts)
        self.out_features, self.in_features = shapes.pop()
        self._limits = [(layout.max_rows, layout) for layout in self.layouts[:-1]]

    @property
    def shape(self) -> tuple[int, int]:
        return self.out_features, self.in_features

    @property
    def nbytes(self) -> int:
        """The memory of every layout it keeps."""
        return sum(layout.nbytes for layout in self.layouts)

    def layout_for(self, rows: int) -> PackedLayout:
        for limit, layout in self._limits:
            if rows <= limit:
                return layout
        return self.layouts[-1]

    def matmul(self, x: torch.Tensor, bias: torch.Tensor | None = None, *,
               float_output: bool = False) -> torch.Tensor:
        """``x @ W.T (+ bias)`` for x [..., in_features]."""
        rows = x.reshape(-1, self.in_features)
        out = self.layout_for(rows.shape[0]).matmul(rows, bias, float_output)
        return out.view(*x.shape[:-1], self.out_features)

    def dequantize(self) -> torch.Tensor:
        """The float32 matrix the layout for one row stands for."""
        return self.layout_for(1).dequantize()

    def gather_rows(self, index: torch.Tensor) -> torch.Tensor:
        """Float32 rows ``index`` of the matrix the layout for one row stands for."""
        return self.layout_for(1).gather_rows(index)

    def _map(self, cut: Callable[[PackedLayout], PackedLayout]) -> "PackedWeight":
        return PackedWeight([cut(layout) for layout in self.layouts])

    def rows(self, ranges: RowRanges) -> "PackedWeight":
        """The shard made of these output rows (a column-parallel shard)."""
        return self._map(lambda layout: layout.rows(ranges))

    def columns(self, start: int, stop: int) -> "PackedWeight":
        """The shard of input columns ``start:stop`` (a row-parallel shard)."""
        return self._map(lambda layout: layout.columns(start, stop))

    def decoder_projection(self, bias: torch.Tensor | None) -> Projection | None:
        """The kernel views of ``fw_kernels.cpu.decoder`` for this weight, or None when it
        cannot run there. Layouts the fused decoder does not read end its use: a weight in
        int4 blocks then oneDNN panels fuses only steps of up to 8 rows."""
        views = Projection(bias=bias)
        for layout in self.layouts:
            if isinstance(layout, Int4Blocks):
                views.int4, views.int4_rows = (layout.packed, layout.params), layout.max_rows
            elif isinstance(layout, Int8Blocks) and views.int4 is None:
                views.q8, views.q8_rows = (layout.packed, layout.params), layout.max_rows
            elif isinstance(layout, Int8Panels):
                views.int8 = (layout.panels, layout.scales)
            elif isinstance(layout, DensePanels):
                views.dense = layout.panels
            else:
                break
        return views if views.max_rows() != 0 else None

    def __repr__(self) -> str:
        kinds = ", ".join(type(layout).__name__ for layout in self.layouts)
        return f"PackedWeight({self.out_features}x{self.in_features}: {kinds})"
