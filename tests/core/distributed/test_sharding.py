"""How a model is split, checked without starting a process: every rank's heads keep
their KV head (split or replicated), the vocabulary is covered once, a split that cannot
be made names both numbers, and a column-parallel shard of packed int4 weights computes
exactly the whole layer's rows."""

from __future__ import annotations

import pytest
import torch

from fw.distributed.layers import column_parallel
from fw.distributed.sharding import attention_shard, check_heads, even_split, vocab_split
from fw.errors import ConfigurationError
from fw.layers.linear import LinearShard, MergedLinear
from fw.layers.lora import LoRALinear, LoRAStep
from fw_builtins.quantization.int4 import Int4WeightOnly
from fw_kernels import cpu

SPLITS = [(4, 2, 2), (4, 1, 2), (8, 2, 4), (8, 8, 4), (12, 4, 2), (16, 2, 8), (9, 3, 3), (32, 8, 8)]


@pytest.mark.parametrize("heads, kv_heads, size", SPLITS)
def test_every_rank_keeps_the_kv_heads_its_query_heads_read(heads, kv_heads, size):
    group = heads // kv_heads  # query head i reads KV head i // group (grouped-query attention)
    covered_q, covered_kv = [], set()
    for rank in range(size):
        shard = attention_shard(heads, kv_heads, size, rank)
        assert shard.num_heads == heads // size
        assert shard.num_kv_heads == max(1, kv_heads // size)
        for head in range(*shard.q_heads):
            assert shard.kv_heads[0] <= head // group < shard.kv_heads[1]
        covered_q.extend(range(*shard.q_heads))
        covered_kv.update(range(*shard.kv_heads))
    assert covered_q == list(range(heads))
    assert covered_kv == set(range(kv_heads))


def test_kv_heads_fewer_than_ranks_are_replicated_on_consecutive_ranks():
    assert [attention_shard(8, 2, 4, rank).kv_heads for rank in range(4)] == [(0, 1), (0, 1), (1, 2), (1, 2)]


@pytest.mark.parametrize("heads, kv_heads, size, message", [
    (3, 1, 2, "the model's 3 attention heads do not divide by --tensor-parallel-size 2"),
    (6, 3, 2, "the model's 3 KV heads do not divide by --tensor-parallel-size 2"),
    (8, 3, 4, "--tensor-parallel-size 4 is not a multiple of the model's 3 KV heads"),
])
def test_a_split_that_cannot_be_made_names_both_numbers(heads, kv_heads, size, message):
    with pytest.raises(ConfigurationError, match=message):
        check_heads(heads, kv_heads, size)


def test_the_vocabulary_is_covered_once_and_the_mlp_split_evenly():
    for vocab, size in [(448, 2), (49152, 3), (32001, 4), (7, 3)]:
        parts = [vocab_split(vocab, size, rank) for rank in range(size)]
        assert [t for a, b in parts for t in range(a, b)] == list(range(vocab))
    with pytest.raises(ConfigurationError, match="vocabulary of 4 tokens is too small"):
        vocab_split(4, 3, 2)
    assert even_split(128, 2, 1, "MLP intermediate size") == (64, 128)
    with pytest.raises(ConfigurationError, match="MLP intermediate size 100 does not divide by --tensor-parallel-size 3"):
        even_split(100, 3, 0, "MLP intermediate size")


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
def test_a_column_parallel_int4_shard_computes_exactly_the_whole_layers_rows():
    q, kv, hidden = 64, 32, 64
    torch.manual_seed(0)
    weight = torch.randn(q + 2 * kv, hidden) * 0.05
    x = torch.randn(3, hidden)
    full = _qkv(weight, [q, kv, kv])(x)
    rows = [[(32, 64)], [(16, 32)], [(16, 32)]]  # rank 1 of 2: its query heads and KV head
    shard = _qkv(weight, [q, kv, kv])
    column_parallel(shard, rows)
    assert shard.shard_sizes == [32, 16, 16] and shard.out_features == 64
    assert shard.tp_shard == LinearShard(hidden, (q, kv, kv), rows=(((32, 64),), ((16, 32),), ((16, 32),)))
    expected = torch.cat([full[:, 32:64], full[:, 64 + 16:64 + 32], full[:, 96 + 16:96 + 32]], dim=1)
    assert torch.equal(shard(x), expected)  # int4 GEMV: each output row is computed on its own


def test_a_lora_adapter_is_cut_like_the_layer_it_adapts():
    layer = MergedLinear(64, [32, 16, 16])
    layer.tp_shard = LinearShard(128, (64, 32, 32), rows=(((32, 64),), ((16, 32),), ((16, 32),)))
    column = LoRALinear(layer, max_loras=1, max_rank=4, dtype=torch.float32, device=torch.device("cpu"),
                        step=LoRAStep())
    a, b = torch.randn(4, 128), torch.randn(32, 4)
    assert column.adapter_shape(1) == (128, 32)  # what the adapter was trained for: the full layer
    cut_a, cut_b = column.local_pair(1, a, b)
    assert torch.equal(cut_a, a) and torch.equal(cut_b, b[16:32])  # column-parallel: its rows of B
    down = MergedLinear(32, [64])
    down.tp_shard = LinearShard(64, (64,), columns=(32, 64))
    row = LoRALinear(down, max_loras=1, max_rank=4, dtype=torch.float32, device=torch.device("cpu"), step=LoRAStep())
    a, b = torch.randn(4, 64), torch.randn(64, 4)
    cut_a, cut_b = row.local_pair(0, a, b)
    assert torch.equal(cut_a, a[:, 32:64]) and torch.equal(cut_b, b)  # row-parallel: its columns of A


def _qkv(weight: torch.Tensor, sizes: list[int]) -> MergedLinear:
    layer = MergedLinear(weight.shape[1], sizes, quant_method=Int4WeightOnly())
    layer.weight.data.copy_(weight)
    layer.post_load()
    return layer
