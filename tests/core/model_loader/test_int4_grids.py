"""A checkpoint's 4-bit grids reach the layers holding their weights: merged layers get
their shards' grids stacked in shard order, and a layer with a shard lacking one gets none."""

from __future__ import annotations

import torch
from torch import nn

from fw.layers.linear import Linear, MergedLinear
from fw.model_loader.int4_grids import Int4Grid, attach_int4_grids


def grid(rows: int, value: float) -> Int4Grid:
    return Int4Grid(torch.full((rows, 2), value, dtype=torch.float16), torch.full((rows, 2), -value,
                                                                                     dtype=torch.float16))


def model() -> nn.Module:
    root = nn.Module()
    root.self_attn = nn.Module()
    root.self_attn.qkv_proj = MergedLinear(64, [32, 16, 16])
    root.self_attn.o_proj = Linear(32, 64)
    root.mlp = nn.Module()
    root.mlp.gate_up_proj = MergedLinear(64, [48, 48])
    return root


def test_shards_are_stacked_in_order_and_incomplete_layers_get_none():
    net = model()
    grids = {"self_attn.v_proj": grid(16, 3), "self_attn.q_proj": grid(32, 1), "self_attn.k_proj": grid(16, 2),
             "mlp.gate_proj": grid(48, 4), "elsewhere.q_proj": grid(8, 5)}
    assert attach_int4_grids(net, grids) == 1
    stacked = net.self_attn.qkv_proj.int4_grid
    assert stacked.scales[:, 0].tolist() == [1.0] * 32 + [2.0] * 16 + [3.0] * 16
    assert torch.equal(stacked.mins, -stacked.scales)
    assert not hasattr(net.self_attn.o_proj, "int4_grid")
    assert not hasattr(net.mlp.gate_up_proj, "int4_grid")  # up_proj has no grid
    assert attach_int4_grids(net, {}) == 0
