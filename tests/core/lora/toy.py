"""A toy model with Hugging Face-style module names, and adapters written by hand, for
testing the LoRA machinery without a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from fw.layers.linear import Linear, MergedLinear

HIDDEN, Q, KV, FFN = 8, 8, 4, 12


class ToyAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv_proj = MergedLinear(HIDDEN, [Q, KV, KV])
        self.o_proj = Linear(Q, HIDDEN)


class ToyMLP(nn.Module):
    def __init__(self):
        super().__init__()
        # An unconventional merged name: its shards are named explicitly.
        self.w13 = MergedLinear(HIDDEN, [FFN, FFN], shard_names=("gate_proj", "up_proj"))
        self.down_proj = Linear(FFN, HIDDEN)
        # Merged without names: nothing can target its shards.
        self.mystery = MergedLinear(HIDDEN, [4, 4])


class ToyLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = ToyAttention()
        self.mlp = ToyMLP()


class ToyModel(nn.Module):
    def __init__(self, num_layers: int = 2):
        super().__init__()
        self.model = nn.Module()
        self.model.layers = nn.ModuleList(ToyLayer() for _ in range(num_layers))
        generator = torch.Generator().manual_seed(0)
        for param in self.parameters():
            param.data.copy_(torch.randn(param.shape, generator=generator))


def write_adapter(folder: Path, shapes: dict[str, tuple[int, int]], *, r: int = 4, seed: int = 0,
                  weights_file: str = "adapter_model.safetensors", **config) -> Path:
    """A PEFT-format adapter: ``shapes`` maps HF module name -> (in, out)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for module, (fan_in, fan_out) in shapes.items():
        tensors[f"base_model.model.{module}.lora_A.weight"] = torch.randn(r, fan_in, generator=generator)
        tensors[f"base_model.model.{module}.lora_B.weight"] = torch.randn(fan_out, r, generator=generator)
    if weights_file.endswith(".safetensors"):
        save_file(tensors, str(folder / weights_file))
    else:
        torch.save(tensors, folder / weights_file)
    targets = sorted({m.rpartition(".")[2] for m in shapes})
    base = {"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": targets, "bias": "none"}
    (folder / "adapter_config.json").write_text(json.dumps({**base, **config}))
    return folder


def layer0_shapes(*names: str) -> dict[str, tuple[int, int]]:
    """(in, out) of the toy's layer-0 modules by HF name."""
    table = {"q_proj": (HIDDEN, Q), "k_proj": (HIDDEN, KV), "v_proj": (HIDDEN, KV), "o_proj": (Q, HIDDEN),
             "gate_proj": (HIDDEN, FFN), "up_proj": (HIDDEN, FFN), "down_proj": (FFN, HIDDEN)}
    parent = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn"}
    return {f"model.layers.0.{parent.get(n, 'mlp')}.{n}": table[n] for n in names}
