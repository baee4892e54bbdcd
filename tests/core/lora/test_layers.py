"""LoRA layers: per-row adapters over merged and plain linear layers, checked against a
dense per-row computation; and the walk from Hugging Face names to fw's layers."""

from __future__ import annotations

import pytest
import torch

from fw.layers.linear import Linear, MergedLinear
from fw.layers.lora import LoRABatch, LoRALinear, LoRAStep
from fw.lora.targets import Target, find_targets
from tests.core.lora.toy import ToyModel

MAX_RANK = 4


def random(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def merged_without_adapters():
    """The base layer as fw computes it (its own kernel's rounding, not torch's linear)."""
    layer = MergedLinear(6, [5, 3, 3])
    layer.weight.data.copy_(random(11, 6, seed=1))
    layer.post_load()
    return layer


def make_merged():
    layer = merged_without_adapters()
    step = LoRAStep()
    layer.lora = LoRALinear(layer, max_loras=2, max_rank=MAX_RANK, dtype=torch.float32,
                            device=torch.device("cpu"), step=step)
    return layer, step


def test_rows_get_their_own_adapter_and_base_rows_stay_untouched():
    layer, step = make_merged()
    # slot 0 adapts shards 0 and 2 with rank 3; slot 1 adapts shard 1 with the full rank
    pairs = {(0, 0): (random(3, 6, seed=2), random(5, 3, seed=3)),
             (0, 2): (random(3, 6, seed=4), random(3, 3, seed=5)),
             (1, 1): (random(4, 6, seed=6), random(3, 4, seed=7))}
    for (slot, shard), (a, b) in pairs.items():
        layer.lora.set_slot(slot, shard, a, b)
    x = random(8, 6, seed=8)
    base = merged_without_adapters()(x)
    runs = [(0, 2), (-1, 3), (1, 2), (0, 1)]
    step.batch = LoRABatch.from_runs(runs, torch.device("cpu"))
    out = layer(x)

    slot_of_row = [s for s, n in runs for _ in range(n)]
    expected = base.clone()
    for row, slot in enumerate(slot_of_row):
        for (s, shard), (a, b) in pairs.items():
            if s == slot:
                expected[row, layer.shard_slice(shard)] += b @ a @ x[row]
    torch.testing.assert_close(out, expected)
    base_rows = [i for i, s in enumerate(slot_of_row) if s < 0]
    assert torch.equal(out[base_rows], base[base_rows])


def test_one_adapter_for_the_whole_batch_and_a_step_without_adapters():
    def without_adapters():
        plain = Linear(4, 5)
        plain.weight.data.copy_(random(5, 4, seed=1))
        plain.post_load()
        return plain

    layer = without_adapters()
    step = LoRAStep()
    layer.lora = LoRALinear(layer, max_loras=1, max_rank=MAX_RANK, dtype=torch.float32,
                            device=torch.device("cpu"), step=step)
    a, b = random(2, 4, seed=2), random(5, 2, seed=3)
    layer.lora.set_slot(0, 0, a, b)
    x = random(3, 4, seed=4)
    base = without_adapters()(x)
    torch.testing.assert_close(base, x @ random(5, 4, seed=1).T)
    assert torch.equal(layer(x), base)  # no batch published: base model only
    step.batch = LoRABatch.from_runs([(0, 3)], torch.device("cpu"))
    assert step.batch.groups[0][1] is None  # every row: no gather
    torch.testing.assert_close(layer(x), base + x @ a.T @ b.T)
    layer.lora.clear_slot(0)
    assert torch.equal(layer(x), base)


def test_a_layer_must_see_the_whole_batch():
    layer, step = make_merged()
    layer.lora.set_slot(0, 0, random(2, 6, seed=1), random(5, 2, seed=2))
    step.batch = LoRABatch.from_runs([(0, 2), (-1, 2)], torch.device("cpu"))
    with pytest.raises(RuntimeError, match="got 3 rows but the step has 4 tokens"):
        layer(random(3, 6, seed=3))


def test_batch_groups_rows_by_slot():
    batch = LoRABatch.from_runs([(1, 2), (-1, 1), (0, 1), (1, 1)], torch.device("cpu"))
    assert batch.num_tokens == 5
    assert {slot: rows.tolist() for slot, rows in batch.groups} == {1: [0, 1, 4], 0: [3]}


def test_targets_follow_hugging_face_names():
    targets = find_targets(ToyModel(num_layers=1))
    attn, mlp = "model.layers.0.self_attn", "model.layers.0.mlp"
    assert targets == {
        f"{attn}.q_proj": Target(f"{attn}.qkv_proj", 0), f"{attn}.k_proj": Target(f"{attn}.qkv_proj", 1),
        f"{attn}.v_proj": Target(f"{attn}.qkv_proj", 2), f"{attn}.o_proj": Target(f"{attn}.o_proj", 0),
        f"{mlp}.gate_proj": Target(f"{mlp}.w13", 0), f"{mlp}.up_proj": Target(f"{mlp}.w13", 1),
        f"{mlp}.down_proj": Target(f"{mlp}.down_proj", 0),
    }  # mlp.mystery has no shard names: not adaptable


def test_merged_shard_names_must_match_the_shards():
    with pytest.raises(ValueError, match="3 shard names for 2 shards"):
        MergedLinear(4, [2, 2], shard_names=("a", "b", "c"))
