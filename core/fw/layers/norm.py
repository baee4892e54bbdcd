"""RMSNorm and LayerNorm, each with the residual add fused in (one pass instead of two at
every layer). Both share the ``forward(x, residual=None)`` shape, so a pre-norm decoder
loop reads the same whichever norm its architecture uses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fw_kernels import cpu


class RMSNorm(nn.Module):
    """``rms_norm(x) * (offset + weight)``. ``offset`` is 0 for Llama-style norms and 1 for
    Gemma's, whose checkpoints store the scale minus one (computed in float32 and rounded
    once, as transformers' Gemma norms do)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6, *, offset: float = 0.0, dtype=torch.float32,
                 device="cpu"):
        super().__init__()
        self.eps = eps
        self.offset = offset
        self.weight = nn.Parameter(torch.ones(hidden_size, dtype=dtype, device=device), requires_grad=False)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.offset:
            scale = self.offset + self.weight.float()
            return (F.rms_norm(x.float(), self.weight.shape, None, self.eps) * scale).to(x.dtype)
        # torch's fused kernel computes in float32 whatever the input dtype, as
        # transformers' RMSNorm does (one kernel instead of six small ops).
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        """Without ``residual``: ``norm(x)``. With it: ``(norm(x + residual), x + residual)``;
        on the CPU kernels the sum is written into ``residual`` (one pass, no new tensor)."""
        if x.is_contiguous() and cpu.supports(x, self.weight) and (residual is None or residual.is_contiguous()):
            rows = x.view(-1, x.shape[-1])
            out = cpu.add_rms_norm(rows, None if residual is None else residual.view(rows.shape), self.weight,
                                   self.eps, self.offset).view(x.shape)
            return out if residual is None else (out, residual)
        if residual is None:
            return self._norm(x)
        x = x + residual
        return self._norm(x), x


class LayerNorm(nn.Module):
    """Mean-centred normalisation with a learned scale and (optionally) shift: GPT-2,
    GPT-J, Phi, BLOOM and most pre-Llama architectures use it instead of RMSNorm."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, *, bias: bool = True, dtype=torch.float32,
                 device="cpu"):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size, dtype=dtype, device=device), requires_grad=False)
        self.bias = (nn.Parameter(torch.zeros(hidden_size, dtype=dtype, device=device), requires_grad=False)
                     if bias else None)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        """Without ``residual``: ``norm(x)``. With it: ``(norm(x + residual), x + residual)``."""
        if residual is None:
            return self._norm(x)
        x = x + residual
        return self._norm(x), x
