"""The interface every stored form of a weight matrix implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Sequence

import torch

RowRanges = Sequence[tuple[int, int]]


def select_rows(tensor: torch.Tensor, ranges: RowRanges) -> torch.Tensor:
    return torch.cat([tensor[start:stop] for start, stop in ranges])


class PackedLayout(ABC):
    """One stored form of an ``[out_features, in_features]`` matrix and the kernel that
    multiplies by it."""

    #: the most rows (tokens) this layout serves in one call; None: any number
    max_rows: ClassVar[int | None] = None

    def __init__(self, out_features: int, in_features: int):
        self.out_features = out_features
        self.in_features = in_features

    @abstractmethod
    def matmul(self, x: torch.Tensor, bias: torch.Tensor | None, float_output: bool) -> torch.Tensor:
        """``x @ W.T (+ bias)`` for x [rows, in_features]. With ``float_output`` the
        kernels that can return their float32 sums unrounded do so."""

    @abstractmethod
    def dequantize(self) -> torch.Tensor:
        """The float32 matrix this layout stands for (tests, references)."""

    def gather_rows(self, index: torch.Tensor) -> torch.Tensor:
        """Float32 rows ``index`` of the matrix (an embedding looked up from its packed
        form, which a tied LM head shares)."""
        raise NotImplementedError(f"{type(self).__name__} weights cannot be looked up by row")

    @property
    def nbytes(self) -> int:
        """The memory its stored tensors take."""
        return sum(t.numel() * t.element_size() for t in vars(self).values() if isinstance(t, torch.Tensor))

    def rows(self, ranges: RowRanges) -> "PackedLayout":
        """The layout of the matrix made of these output rows."""
        raise NotImplementedError(f"{type(self).__name__} weights cannot be sharded")

    def columns(self, start: int, stop: int) -> "PackedLayout":
        """The layout of input columns ``start:stop``."""
        raise NotImplementedError(f"{type(self).__name__} weights cannot be sharded")
