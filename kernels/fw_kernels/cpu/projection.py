"""The kernel views of one projection, as ``projection.c`` (and through it ``decoder.c`` and
``moe.c``) reads them: the layouts a packed weight holds, picked by a step's row count."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch

from fw_kernels.cpu import MAX_GEMV_ROWS

#: gating activation name -> its code in fw_cpu.h (FW_ACT_*): ``act(gate) * up``
GATES = {"silu": 0, "gelu_tanh": 1}


#: a row limit that means "any number of rows" to the C side
ANY_ROWS = 1 << 62


class ProjectionStruct(ctypes.Structure):
    _fields_ = ([(name, ctypes.c_void_p) for name in ("int4", "params")] + [("int4_rows", ctypes.c_int64)]
                + [(name, ctypes.c_void_p) for name in ("q8", "q8_params")] + [("q8_rows", ctypes.c_int64)]
                + [(name, ctypes.c_void_p) for name in ("int8", "scales", "dense", "bias")])


def address(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


@dataclass
class Projection:
    #: ``packing.pack_int4`` blocks, used up to ``int4_rows`` rows (None: any)
    int4: tuple[torch.Tensor, torch.Tensor] | None = None
    int4_rows: int | None = MAX_GEMV_ROWS
    #: ``packing.pack_int8`` blocks, used up to ``q8_rows`` rows (where int4 blocks are absent)
    q8: tuple[torch.Tensor, torch.Tensor] | None = None
    q8_rows: int | None = MAX_GEMV_ROWS
    #: ``packing.pack_int8_panels``, used beyond (and always without int4)
    int8: tuple[torch.Tensor, torch.Tensor] | None = None
    #: ``packing.pack_bf16_panels``, used beyond where int8 panels are absent
    dense: torch.Tensor | None = None
    bias: torch.Tensor | None = None

    def max_rows(self) -> int | None:
        """The most rows this projection can take (None: any)."""
        if self.int8 is not None or self.dense is not None:
            return None
        if self.int4 is not None:
            return self.int4_rows
        return self.q8_rows if self.q8 is not None else 0

    def fill(self, target: ProjectionStruct) -> None:
        """Point ``target`` at this projection's tensors."""
        packed, params = self.int4 or (None, None)
        target.int4, target.params = address(packed), address(params)
        target.int4_rows = ANY_ROWS if self.int4_rows is None else self.int4_rows
        packed, params = self.q8 or (None, None)
        target.q8, target.q8_params = address(packed), address(params)
        target.q8_rows = ANY_ROWS if self.q8_rows is None else self.q8_rows
        panels, scales = self.int8 or (None, None)
        target.int8, target.scales = address(panels), address(scales)
        target.dense, target.bias = address(self.dense), address(self.bias)


def max_rows(projections) -> int | None:
    """The most rows a call over all these projections may take (None: any)."""
    limits = [p.max_rows() for p in projections]
    bounded = [limit for limit in limits if limit is not None]
    return min(bounded) if bounded else None
