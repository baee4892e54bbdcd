"""Quantized layouts: integer levels with scales (and minimums), for fw's GEMV and int8
GEMM kernels, and torch's int4 kernel where fw's cannot be built."""

from __future__ import annotations

from typing import ClassVar

import torch

from fw.layers.packed.layout import PackedLayout, select_rows
from fw_kernels import cpu
from fw_kernels.cpu import packing


class _LevelLayout(PackedLayout):
    """A layout stored as integer levels plus parameters (scales, minimums), sharded
    through them: ``_parts`` gives levels [out, in] and the parameters, ``_from_parts``
    packs such a pair again."""

    #: whether the parameters go per group of 32 inputs (cut with the columns) rather
    #: than per output row (kept whole: a row's columns share its scale)
    grouped_params: ClassVar[bool] = True

    def _parts(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def _from_parts(cls, levels: torch.Tensor, params: torch.Tensor) -> "_LevelLayout":
        raise NotImplementedError

    def rows(self, ranges):
        levels, params = self._parts()
        return self._from_parts(select_rows(levels, ranges), select_rows(params, ranges))

    def columns(self, start, stop):
        if start % packing.GROUP or stop % packing.GROUP:
            raise ValueError(f"input columns {start}:{stop} split a group of {packing.GROUP} quantized weights")
        levels, params = self._parts()
        if self.grouped_params:
            params = params[:, start // packing.GROUP: stop // packing.GROUP].contiguous()
        return self._from_parts(levels[:, start:stop].contiguous(), params)


class _Blocks(_LevelLayout):
    """Levels in groups of 32 inputs with a float16 scale and minimum per group, 16 output
    rows interleaved by ``packing`` for ``gemv.c``, which reads them for any number of rows
    with one arithmetic (a row's result does not depend on the others). A layout that
    serves every row count (``any_rows``) is the default methods' only one, which keeps
    their numerics batch-invariant; one that a method follows with another layout for
    larger steps serves up to ``max_rows``."""

    default_rows: ClassVar[int | None] = cpu.MAX_GEMV_ROWS

    def __init__(self, packed: torch.Tensor, params: torch.Tensor, out_features: int, in_features: int,
                 max_rows: int | None = None, *, any_rows: bool = False):
        super().__init__(out_features, in_features)
        self.packed, self.params = packed, params
        self.max_rows = None if any_rows else (max_rows or self.default_rows)

    def _with_rows(self, layout: "_Blocks") -> "_Blocks":
        layout.max_rows = self.max_rows
        return layout

    def rows(self, ranges):
        return self._with_rows(super().rows(ranges))

    def columns(self, start, stop):
        return self._with_rows(super().columns(start, stop))

    def _stored_rows(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the packed bytes [n, groups, bytes per group], float32 parameters [n, groups, 2])
        of rows ``index``, read in place from the interleaved blocks."""
        packed, params = packing.block_rows(self.packed, self.params, index)
        return packed, params.float()


class Int4Blocks(_Blocks):
    """4-bit min-max levels in groups of 32 inputs with a float16 scale and minimum (GGUF's
    Q4_1; Q4_0 and Q4_K levels as they are), read by ``gemv.c``."""

    @classmethod
    def pack(cls, weight: torch.Tensor, max_rows: int | None = None, *, any_rows: bool = False) -> "Int4Blocks":
        return cls(*packing.pack_int4(weight), *weight.shape, max_rows, any_rows=any_rows)

    @classmethod
    def _from_parts(cls, levels, params, max_rows=None, **rows):
        """From levels uint8 [out, in] (0..15) and float16 (scale, minimum) [out, in / 32, 2]:
        ``w = level * scale + minimum``."""
        return cls(*packing.pack_int4_parts(levels, params), *levels.shape, max_rows, **rows)

    def _parts(self):
        return packing.int4_parts(self.packed, self.params, self.out_features)

    def gather_rows(self, index):
        packed, params = self._stored_rows(index)
        levels = torch.cat([packed & 15, packed >> 4], -1).float()
        return (levels * params[..., :1] + params[..., 1:]).flatten(1)

    def matmul(self, x, bias, float_output):
        return cpu.int4_gemv(x.contiguous(), self.packed, self.params, bias, self.out_features,
                             float_output=float_output)

    def dequantize(self):
        return packing.unpack_int4(self.packed, self.params, self.out_features)


class Int8Blocks(_Blocks):
    """8-bit levels in groups of 32 inputs with a float16 scale and minimum (GGUF's Q8_0,
    and Q5_0/Q5_1/IQ4_NL levels as they are), read by ``gemv.c``: an 8-bit embedding's LM
    head, for every row count by default."""

    default_rows = 4

    @classmethod
    def pack(cls, weight: torch.Tensor, max_rows: int | None = None, *, any_rows: bool = False) -> "Int8Blocks":
        return cls(*packing.pack_int8(weight), *weight.shape, max_rows, any_rows=any_rows)

    @classmethod
    def _from_parts(cls, levels, params, max_rows=None, **rows):
        return cls(*packing.pack_int8_parts(levels, params), *levels.shape, max_rows, **rows)

    def _parts(self):
        return packing.int8_parts(self.packed, self.params, self.out_features)

    def gather_rows(self, index):
        levels, params = self._stored_rows(index)
        return (levels.float() * params[..., :1] + params[..., 1:]).flatten(1)

    def matmul(self, x, bias, float_output):
        return cpu.int8_gemv(x.contiguous(), self.packed, self.params, bias, self.out_features,
                             float_output=float_output)

    def dequantize(self):
        return packing.unpack_int8(self.packed, self.params, self.out_features)


class Int8Panels(_LevelLayout):
    """Symmetric 8-bit per output row, in panels for fw's W8A8 GEMM (``igemm.c``,
    AVX512-VNNI); activations are quantized per row and group of 32 on the fly."""

    grouped_params = False  # one scale per row

    def __init__(self, panels: torch.Tensor, scales: torch.Tensor, out_features: int, in_features: int):
        super().__init__(out_features, in_features)
        self.panels, self.scales = panels, scales

    @classmethod
    def pack(cls, weight: torch.Tensor) -> "Int8Panels":
        return cls(*packing.pack_int8_panels(weight), *weight.shape)

    @staticmethod
    def applies(weight: torch.Tensor) -> bool:
        return (weight.dtype == torch.bfloat16 and weight.shape[1] % packing.GROUP == 0
                and cpu.int8_gemm_available())

    @classmethod
    def _from_parts(cls, levels, scales):
        return cls(*packing.pack_int8_panel_parts(levels, scales), *levels.shape)

    def _parts(self):
        return packing.int8_panel_parts(self.panels, self.scales, self.out_features)

    def matmul(self, x, bias, float_output):
        return cpu.int8_gemm(x.contiguous(), self.panels, self.scales, bias, self.out_features,
                             float_output=float_output)

    def dequantize(self):
        return packing.unpack_int8_panels(self.panels, self.scales, self.out_features)


class TorchInt4(PackedLayout):
    """Where fw's kernels cannot be built: torch's int4 GEMV kernel over the same min-max
    levels (its scales in the model dtype)."""

    max_rows = cpu.MAX_GEMV_ROWS
    GROUP = 32

    def __init__(self, packed: torch.Tensor, scales_zeros: torch.Tensor, out_features: int, in_features: int):
        super().__init__(out_features, in_features)
        self.packed, self.scales_zeros = packed, scales_zeros

    @classmethod
    def pack(cls, weight: torch.Tensor) -> "TorchInt4":
        """torch's kernel computes ``w = (q - 8) * scale + zero``."""
        out_features, in_features = weight.shape
        grouped = weight.float().view(out_features, in_features // cls.GROUP, cls.GROUP)
        low, high = grouped.amin(-1, keepdim=True), grouped.amax(-1, keepdim=True)
        scale = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny)
        levels = ((grouped - low) / scale).round().clamp(0, 15).to(torch.int32).view(out_features, in_features)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(levels, 1)
        scales_zeros = torch.cat([scale, low + 8 * scale], -1).transpose(0, 1).contiguous()
        return cls(packed, scales_zeros.to(weight.dtype), out_features, in_features)

    def matmul(self, x, bias, float_output):
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(x.contiguous(), self.packed, self.GROUP, self.scales_zeros)
        return out if bias is None else out + bias

    def dequantize(self):
        eye = torch.eye(self.in_features, dtype=self.scales_zeros.dtype)
        return self.matmul(eye, None, False).float().T.contiguous()
