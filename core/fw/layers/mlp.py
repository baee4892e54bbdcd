"""The gated MLP of a decoder layer: ``down(act(gate) * up)`` over one merged gate/up
projection (SiLU for Llama, Qwen, Mixtral's experts; GELU-tanh for Gemma)."""

from __future__ import annotations

import torch
from torch import nn

from fw.layers.activation import gated_activation
from fw.layers.linear import Linear, MergedLinear
from fw.models.interface import ModelContext


class GatedMLP(nn.Module):
    def __init__(self, hidden: int, intermediate: int, ctx: ModelContext, *, activation: str = "silu",
                 bias: bool = False):
        super().__init__()
        common = dict(dtype=ctx.dtype, device=ctx.device, quant_method=ctx.quantization)
        self.intermediate = intermediate
        self.gate_up_proj = MergedLinear(hidden, [intermediate, intermediate], bias=bias, **common)
        self.down_proj = Linear(intermediate, hidden, bias=bias, **common)
        #: the config's hidden_act name
        self.act_name = activation
        self.act = gated_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_up_proj(x)))

    def run_in_step(self, x: torch.Tensor, step_rows: int) -> torch.Tensor:
        """The MLP of some of a step's rows, through the layouts the whole step's row count
        picks (an expert of a mixture runs on its tokens only; its weights are read as a
        dense layer's are in the same step)."""
        gate_up, down = self.gate_up_proj, self.down_proj
        hidden = gate_up.packed.layout_for(step_rows).matmul(x.contiguous(), gate_up.bias, False)
        return down.packed.layout_for(step_rows).matmul(self.act(hidden).contiguous(), down.bias, False)
