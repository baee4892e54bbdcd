"""A checkpoint's own 4-bit grid, carried from the loader to the linear layers.

A GPTQ or AWQ checkpoint stores each weight as 4-bit levels with a scale and a zero
point per group of input columns. Loaders hand the model dense weights (the same for
every quantization method, or none), and beside them, by Hugging Face weight name, the
grid those weights lie on: per output row and group of 32 inputs, a float16 scale and
minimum such that ``w = level * scale + min`` with levels 0..15. A 4-bit method that
packs onto this grid recovers the checkpoint's levels exactly instead of choosing its
own (min-max) grid, which would round every weight a second time.

``attach_int4_grids`` puts each grid on the layer holding its weight, as
``layer.int4_grid``; merged layers (``qkv_proj``) get their shards' grids stacked in
shard order, the same mapping LoRA uses (``fw.lora.targets``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: input columns per group of the grid (fw's int4 layout)
GROUP = 32


@dataclass(frozen=True)
class Int4Grid:
    """Per output row and group of ``GROUP`` inputs: ``w = level * scale + min``."""

    #: float16 [rows, in_features / GROUP]
    scales: torch.Tensor
    #: float16 [rows, in_features / GROUP]
    mins: torch.Tensor


def attach_int4_grids(model: nn.Module, grids: dict[str, Int4Grid]) -> int:
    """Give every linear layer whose weights all have a grid its ``int4_grid``; returns
    how many layers got one. ``grids`` is keyed by Hugging Face module name
    (``model.layers.0.self_attn.q_proj``)."""
    if not grids:
        return 0
    from fw.lora.targets import find_targets

    shards: dict[str, dict[int, Int4Grid]] = {}
    for hf_name, target in find_targets(model).items():
        if hf_name in grids:
            shards.setdefault(target.module, {})[target.shard] = grids[hf_name]
    modules = dict(model.named_modules())
    attached = 0
    for module_name, by_shard in shards.items():
        layer = modules[module_name]
        count = len(getattr(layer, "shard_sizes", [0]))
        if sorted(by_shard) != list(range(count)):
            continue  # a shard without a grid: the layer packs on its own grid
        ordered = [by_shard[i] for i in range(count)]
        layer.int4_grid = Int4Grid(torch.cat([g.scales for g in ordered]), torch.cat([g.mins for g in ordered]))
        attached += 1
    return attached
