"""Fitting adapters to a model: Hugging Face module names onto fw's linear layers.

PEFT names what it adapts by the Hugging Face module path
(``model.layers.0.self_attn.q_proj``). fw's models use the same paths, except that
projections reading the same input are merged: ``q_proj`` is shard 0 of ``qkv_proj``.
Walking the model's ``Linear`` modules therefore gives every adaptable name, so a
model plugin gets LoRA without writing any of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fw.layers.linear import Linear, MergedLinear
from fw.layers.lora import LoRALinear, LoRAStep
from fw.lora.peft import PeftAdapter
from fw.errors import LoRAAdapterError

#: merged-layer names whose shards need no ``shard_names`` (vLLM's convention too)
CONVENTIONAL_SHARDS = {
    "qkv_proj": ("q_proj", "k_proj", "v_proj"),
    "gate_up_proj": ("gate_proj", "up_proj"),
}


@dataclass(frozen=True)
class Target:
    """Where one Hugging Face module lives in fw: a layer and the shard within it."""

    module: str  # fw module name, e.g. model.layers.0.self_attn.qkv_proj
    shard: int


def find_targets(model: nn.Module) -> dict[str, Target]:
    """Every adaptable Hugging Face module name of ``model``."""
    targets: dict[str, Target] = {}
    for name, module in model.named_modules():
        if not isinstance(module, Linear):
            continue
        parent, _, leaf = name.rpartition(".")
        if isinstance(module, MergedLinear):
            shard_names = module.shard_names or CONVENTIONAL_SHARDS.get(leaf)
            if shard_names is None or len(shard_names) != len(module.shard_sizes):
                continue  # the shards' own names are unknown: not adaptable
            for index, shard_name in enumerate(shard_names):
                targets[f"{parent}.{shard_name}" if parent else shard_name] = Target(name, index)
        else:
            targets[name] = Target(name, 0)
    return targets


def attach_lora_layers(model: nn.Module, targets: dict[str, Target], *, max_loras: int, max_rank: int,
                       dtype: torch.dtype, device: torch.device, step: LoRAStep) -> dict[str, LoRALinear]:
    """Give every adaptable layer a ``LoRALinear`` hook; returns them by fw module name."""
    modules = dict(model.named_modules())
    layers: dict[str, LoRALinear] = {}
    for module_name in dict.fromkeys(t.module for t in targets.values()):
        layer = modules[module_name]
        layer.lora = LoRALinear(layer, max_loras=max_loras, max_rank=max_rank, dtype=dtype,
                                device=device, step=step)
        layers[module_name] = layer.lora
    return layers


@dataclass
class LoRAWeights:
    """An adapter fitted to the model: per fw layer, per shard, ``(A, scale * B)``."""

    name: str
    rank: int
    layers: dict[str, dict[int, tuple[torch.Tensor, torch.Tensor]]]


def fit_adapter(adapter: PeftAdapter, targets: dict[str, Target], layers: dict[str, LoRALinear], *,
                max_rank: int, dtype: torch.dtype) -> LoRAWeights:
    """Check ``adapter`` against the model and ``--max-lora-rank``; errors name the reason."""
    def refuse(reason: str) -> LoRAAdapterError:
        return LoRAAdapterError(adapter.name, adapter.path, reason)

    if adapter.rank > max_rank:
        raise refuse(f"rank {adapter.rank} exceeds --max-lora-rank {max_rank}; restart with a higher "
                     "--max-lora-rank to serve it")
    leaves = {name.rpartition(".")[2] for name in targets}
    for wanted in adapter.target_modules or ():
        if wanted.rpartition(".")[2] not in leaves and wanted not in targets:
            raise refuse(f"targets {wanted!r}, which this model lacks or fw cannot adapt "
                         f"(adaptable: {', '.join(sorted(leaves))})")
    if adapter.unexpected:
        raise refuse(f"unexpected tensor {adapter.unexpected[0]!r} (fw serves plain LoRA on linear "
                     "projections only)")
    fitted: dict[str, dict[int, tuple[torch.Tensor, torch.Tensor]]] = {}
    for hf_name, module in adapter.modules.items():
        target = targets.get(hf_name)
        if target is None:
            raise refuse(f"targets module {hf_name!r}, which this model lacks or fw cannot adapt "
                         f"(adaptable: {', '.join(sorted(leaves))})")
        layer = layers[target.module]
        expected = layer.adapter_shape(target.shard)
        got = (module.lora_a.shape[1], module.lora_b.shape[0])
        if got != expected:
            raise refuse(f"{hf_name} maps {got[0]} -> {got[1]} features but the model's layer maps "
                         f"{expected[0]} -> {expected[1]}: the adapter was trained for another base model")
        lora_a, lora_b = layer.local_pair(target.shard, module.lora_a, module.lora_b)
        fitted.setdefault(target.module, {})[target.shard] = (
            lora_a.to(dtype), (lora_b.float() * module.scale).to(dtype))
    return LoRAWeights(adapter.name, adapter.rank, fitted)
