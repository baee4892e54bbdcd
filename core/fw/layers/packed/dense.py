"""Unquantized layouts: the matrix as it is, fw's bf16 and float32 panels, oneDNN's prepacked form."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fw.layers.packed.layout import PackedLayout, select_rows
from fw_kernels import cpu
from fw_kernels.cpu import packing


class PlainWeight(PackedLayout):
    """The matrix as it is, through ``F.linear`` (float32, CUDA, anything the kernels skip)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__(*weight.shape)
        self.weight = weight

    def matmul(self, x, bias, float_output):
        return F.linear(x, self.weight, bias)

    def dequantize(self):
        return self.weight.float()

    def gather_rows(self, index):
        return self.weight.index_select(0, index).float()

    def rows(self, ranges):
        return PlainWeight(select_rows(self.weight, ranges).contiguous())

    def columns(self, start, stop):
        return PlainWeight(self.weight[:, start:stop].contiguous())


class DensePanels(PackedLayout):
    """bfloat16 in panels of 32 output rows for fw's AVX512-BF16 GEMM (``dense.c``)."""

    def __init__(self, panels: torch.Tensor, out_features: int, in_features: int):
        super().__init__(out_features, in_features)
        self.panels = panels

    @classmethod
    def pack(cls, weight: torch.Tensor) -> "DensePanels":
        return cls(packing.pack_bf16_panels(weight), *weight.shape)

    @staticmethod
    def applies(weight: torch.Tensor) -> bool:
        return (weight.device.type == "cpu" and weight.dtype == torch.bfloat16 and weight.shape[1] % 2 == 0
                and cpu.dense_available())

    def matmul(self, x, bias, float_output):
        return cpu.dense_gemm(x.contiguous(), self.panels, bias, self.out_features, float_output=float_output)

    def _matrix(self) -> torch.Tensor:
        return packing.unpack_bf16_panels(self.panels, self.out_features)

    def dequantize(self):
        return self._matrix().float()

    def rows(self, ranges):
        return DensePanels.pack(select_rows(self._matrix(), ranges))

    def columns(self, start, stop):
        return DensePanels.pack(self._matrix()[:, start:stop])


class F32Panels(PackedLayout):
    """float32 in panels of 32 output rows for fw's float32 GEMM (``dense_f32.c``), which sums
    every output in one fixed order whatever the number of rows: torch's float32 linear
    changes its blocking with the row count, and a row's last bits with it."""

    def __init__(self, panels: torch.Tensor, out_features: int, in_features: int):
        super().__init__(out_features, in_features)
        self.panels = panels

    @classmethod
    def pack(cls, weight: torch.Tensor) -> "F32Panels":
        return cls(packing.pack_f32_panels(weight), *weight.shape)

    @staticmethod
    def applies(weight: torch.Tensor) -> bool:
        return weight.device.type == "cpu" and weight.dtype == torch.float32 and cpu.dense_f32_available()

    def matmul(self, x, bias, float_output):
        return cpu.dense_gemm_f32(x.contiguous(), self.panels, bias, self.out_features)

    def dequantize(self):
        return packing.unpack_f32_panels(self.panels, self.out_features)

    def rows(self, ranges):
        return F32Panels.pack(select_rows(self.dequantize(), ranges))

    def columns(self, start, stop):
        return F32Panels.pack(self.dequantize()[:, start:stop])


class OneDNNWeight(PackedLayout):
    """bfloat16 prepacked for oneDNN's linear (CPUs without AVX512-BF16): 1.3-2.5x torch's
    default path at serving batch sizes, with F.linear's sums."""

    def __init__(self, packed: torch.Tensor, out_features: int, in_features: int):
        super().__init__(out_features, in_features)
        self.packed = packed

    @classmethod
    def pack(cls, weight: torch.Tensor) -> "OneDNNWeight":
        return cls(torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None), *weight.shape)

    @staticmethod
    def applies(weight: torch.Tensor) -> bool:
        return weight.device.type == "cpu" and weight.dtype == torch.bfloat16 and torch.backends.mkldnn.is_available()

    def matmul(self, x, bias, float_output):
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.packed, bias, "none", [], "")

    def dequantize(self):
        eye = torch.eye(self.in_features, dtype=torch.bfloat16)
        return self.matmul(eye, None, False).float().T.contiguous()

    def _matrix(self) -> torch.Tensor:
        """The bf16 matrix: a product with the identity sums one weight and zeros, exactly."""
        return self.dequantize().to(torch.bfloat16)

    def rows(self, ranges):
        return OneDNNWeight.pack(select_rows(self._matrix(), ranges))

    def columns(self, start, stop):
        return OneDNNWeight.pack(self._matrix()[:, start:stop])


def dense_layout(weight: torch.Tensor) -> PackedLayout:
    """The fastest unquantized form of ``weight`` here: fw's bf16 GEMM, else oneDNN's (both
    bf16 on a CPU); in float32 fw's GEMM of fixed summation order; else the matrix itself."""
    if DensePanels.applies(weight):
        return DensePanels.pack(weight)
    if F32Panels.applies(weight):
        return F32Panels.pack(weight)
    if OneDNNWeight.applies(weight):
        return OneDNNWeight.pack(weight)
    return PlainWeight(weight)
