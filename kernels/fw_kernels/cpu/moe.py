"""The mixture-of-experts MLP of ``moe.c``: routing, tokens grouped by expert, each expert's
projections once per step, the weighted sum.

``fw.layers.moe`` builds one over its packed experts and calls it layer by layer; the fused
decoder points its layers at the same struct, so both compute a step the same way. The
tensors must stay alive and in place while it is used (they are model parameters).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch

from fw_kernels.cpu import library
from fw_kernels.cpu.projection import GATES, Projection, ProjectionStruct, address, max_rows


class MoEStruct(ctypes.Structure):
    _fields_ = ([(name, ctypes.c_int64) for name in ("experts", "top_k", "renormalize", "intermediate",
                                                     "shared_intermediate", "activation")]
                + [("router", ctypes.c_void_p), ("gate_up", ctypes.POINTER(ProjectionStruct)),
                   ("down", ctypes.POINTER(ProjectionStruct)), ("shared_gate_up", ProjectionStruct),
                   ("shared_down", ProjectionStruct), ("shared_gate", ctypes.c_void_p)])


@dataclass
class MoEWeights:
    #: [experts, hidden] in the model dtype: the router's logits are plain float32 dot products
    router: torch.Tensor
    #: each expert's merged gate/up and down projections
    gate_up: list[Projection]
    down: list[Projection]
    top_k: int
    renormalize: bool
    intermediate: int
    activation: str = "silu"
    #: the shared expert (Qwen2-MoE), its size, and its sigmoid gate's weights [hidden] (or None)
    shared_gate_up: Projection | None = None
    shared_down: Projection | None = None
    shared_intermediate: int = 0
    shared_gate: torch.Tensor | None = None


class FusedMoE:
    def __init__(self, weights: MoEWeights):
        self.dtype = weights.router.dtype
        self.hidden = weights.router.shape[1]
        experts = len(weights.gate_up)
        self._gate_up = (ProjectionStruct * experts)()
        self._down = (ProjectionStruct * experts)()
        for i in range(experts):
            weights.gate_up[i].fill(self._gate_up[i])
            weights.down[i].fill(self._down[i])
        self.struct = MoEStruct(
            experts=experts, top_k=weights.top_k, renormalize=int(weights.renormalize),
            intermediate=weights.intermediate, shared_intermediate=weights.shared_intermediate,
            activation=GATES[weights.activation], router=weights.router.data_ptr(),
            gate_up=self._gate_up, down=self._down, shared_gate=address(weights.shared_gate))
        projections = [*weights.gate_up, *weights.down]
        if weights.shared_intermediate:
            weights.shared_gate_up.fill(self.struct.shared_gate_up)
            weights.shared_down.fill(self.struct.shared_down)
            projections += [weights.shared_gate_up, weights.shared_down]
        self._keep = weights  # the tensors the structs point into
        #: the most rows (tokens) a call may have; None: any
        self.max_rows = max_rows(projections)
        suffix = {torch.float32: "f32", torch.bfloat16: "bf16"}[self.dtype]
        self._run = getattr(library(), f"fw_moe_{suffix}")
        P, I = ctypes.c_void_p, ctypes.c_int64
        self._run.argtypes = [P, P, P, I, I]
        self._run.restype = None

    @property
    def address(self) -> int:
        return ctypes.addressof(self.struct)

    def takes(self, rows: int) -> bool:
        return self.max_rows is None or rows <= self.max_rows

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The MoE MLP of contiguous x [rows, hidden] (rows within ``max_rows``)."""
        if not self.takes(x.shape[0]):
            raise ValueError(f"this mixture of experts takes at most {self.max_rows} tokens, got {x.shape[0]}")
        out = torch.empty_like(x)
        self._run(self.address, x.data_ptr(), out.data_ptr(), x.shape[0], self.hidden)
        return out
