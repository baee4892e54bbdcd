"""A mixture-of-experts MLP (Mixtral, Qwen2-MoE, Qwen3-MoE): a router's softmax picks each
token's ``top_k`` experts (their weights renormalised to sum to one where the checkpoint
says so), the experts' outputs are summed with those weights, and Qwen2-MoE adds a shared
expert scaled by a sigmoid gate.

Experts are ``GatedMLP``s, so their weights are packed weights like any projection's.
A step's tokens are grouped by expert, so each expert's GEMMs run once per step on all
of its tokens, not once per token. On the CPU kernels the whole block is one C call
(``fw_kernels.cpu.moe``), the one the fused decoder makes too; elsewhere (float32 plain
weights, CUDA, no compiler) the same grouping runs in torch.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from fw.layers.activation import FUSED_GATES
from fw.layers.mlp import GatedMLP
from fw.models.interface import ModelContext
from fw_kernels import cpu

logger = logging.getLogger("fw.layers")


class Router(nn.Module):
    """The router's ``[experts, hidden]`` weight, kept plain: its logits decide which
    experts run, so it is not quantized (a small matrix)."""

    def __init__(self, experts: int, hidden: int, *, dtype, device):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, hidden, dtype=dtype, device=device), requires_grad=False)


class MixtureOfExperts(nn.Module):
    def __init__(self, hidden: int, intermediate: int, experts: int, top_k: int, ctx: ModelContext, *,
                 renormalize: bool, activation: str = "silu", shared_intermediate: int = 0,
                 shared_gate: bool = False):
        super().__init__()
        if not 0 < top_k <= experts:
            raise ValueError(f"num_experts_per_tok {top_k} must be between 1 and the {experts} experts")
        self.hidden, self.top_k, self.renormalize = hidden, top_k, renormalize
        self.gate = Router(experts, hidden, dtype=ctx.dtype, device=ctx.device)
        self.experts = nn.ModuleList(GatedMLP(hidden, intermediate, ctx, activation=activation)
                                     for _ in range(experts))
        self.shared_expert = (GatedMLP(hidden, shared_intermediate, ctx, activation=activation)
                              if shared_intermediate else None)
        self.shared_expert_gate = (Router(1, hidden, dtype=ctx.dtype, device=ctx.device)
                                   if shared_intermediate and shared_gate else None)
        self._fused = None
        self._fused_built = False

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def fused(self):
        """The C block over these packed experts (``fw_kernels.cpu.moe.FusedMoE``), or None
        where it cannot run (built once, after the weights are packed)."""
        if not self._fused_built:
            self._fused_built = True
            self._fused = self._build_fused()
        return self._fused

    def _build_fused(self):
        from fw_kernels.cpu.moe import FusedMoE, MoEWeights

        gate = FUSED_GATES.get(self.experts[0].act_name)
        router = self.gate.weight
        if gate is None or not cpu.supports(router) or router.dim() != 2:
            return None
        mlps = [*self.experts, *([self.shared_expert] if self.shared_expert is not None else [])]
        views = [(mlp.gate_up_proj.packed.decoder_projection(mlp.gate_up_proj.bias),
                  mlp.down_proj.packed.decoder_projection(mlp.down_proj.bias)) for mlp in mlps]
        if any(v is None for pair in views for v in pair) or any(m.gate_up_proj.lora or m.down_proj.lora for m in mlps):
            logger.debug("the experts' weights are not in layouts fw's MoE kernel reads; torch runs them")
            return None
        experts = views[:self.num_experts]
        shared = views[self.num_experts] if self.shared_expert is not None else (None, None)
        shared_gate = None if self.shared_expert_gate is None else self.shared_expert_gate.weight[0]
        return FusedMoE(MoEWeights(
            router=router, gate_up=[g for g, _ in experts], down=[d for _, d in experts], top_k=self.top_k,
            renormalize=self.renormalize, intermediate=self.experts[0].intermediate, activation=gate,
            shared_gate_up=shared[0], shared_down=shared[1],
            shared_intermediate=0 if self.shared_expert is None else self.shared_expert.intermediate,
            shared_gate=shared_gate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.hidden)
        fused = self.fused()
        if fused is not None and fused.takes(rows.shape[0]):
            return fused(rows.contiguous()).view(x.shape)
        return self._grouped(rows).view(x.shape)

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights float32 [rows, top_k], expert ids [rows, top_k]), the largest first."""
        probs = F.linear(x, self.gate.weight).float().softmax(-1)
        weights, ids = probs.topk(self.top_k, dim=-1)
        if self.renormalize:
            weights = weights / weights.sum(-1, keepdim=True)
        return weights, ids

    def _grouped(self, x: torch.Tensor) -> torch.Tensor:
        """The torch path: each expert once, on all of the step's tokens routed to it."""
        weights, ids = self.route(x)
        out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        picks = ids.flatten()
        order = picks.argsort(stable=True)
        counts = torch.bincount(picks, minlength=self.num_experts).tolist()
        start = 0
        for expert, count in zip(self.experts, counts):
            if count:
                picked = order[start:start + count]
                tokens = picked // self.top_k
                result = expert.run_in_step(x[tokens], x.shape[0]).float()
                out.index_add_(0, tokens, result * weights.flatten()[picked, None])
            start += count
        if self.shared_expert is not None:
            shared = self.shared_expert.run_in_step(x, x.shape[0]).float()
            if self.shared_expert_gate is not None:
                shared = shared * torch.sigmoid(F.linear(x, self.shared_expert_gate.weight).float())
            out += shared
        return out.to(x.dtype)
