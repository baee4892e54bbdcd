"""The parallel forms of fw's layers, made in place from loaded, packed ones.

* column-parallel (``MergedLinear`` q/k/v, gate/up): the rank keeps its output rows of
  each projection; no communication, its outputs feed the rank's own heads or MLP part;
* row-parallel (o, down): the rank keeps its input columns; the partial products (the
  LoRA adapters' too) are summed by an all-reduce in float32 (``Linear.reduce``); the
  bias is added on rank 0 only;
* vocabulary-parallel embedding: each rank looks up the ids of its part of the vocabulary
  (zeros for the others) and an all-reduce completes every row;
* vocabulary-parallel LM head: each rank scores its part of the vocabulary and rank 0
  gathers the parts into whole logits.

Weights are cut through ``PackedWeight.rows/columns``: from the stored levels, bit for bit.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fw.distributed.group import TensorParallelGroup
from fw.distributed.sharding import vocab_part
from fw.layers.embedding import LMHead, VocabEmbedding
from fw.layers.linear import Linear, LinearShard, MergedLinear

Ranges = Sequence[tuple[int, int]]


def column_parallel(linear: MergedLinear, rows: Sequence[Ranges]) -> None:
    """Keep, of each projection ``i``, its output rows ``rows[i]`` (projection-relative)."""
    full = tuple(linear.shard_sizes)
    offsets = [sum(full[:i]) for i in range(len(full))]
    ranges = [(offset + start, offset + stop) for offset, held in zip(offsets, rows) for start, stop in held]
    linear.packed = linear.packed.rows(ranges)
    if linear.bias is not None:
        linear.bias = nn.Parameter(torch.cat([linear.bias.data[a:b] for a, b in ranges]), requires_grad=False)
    linear.tp_shard = LinearShard(linear.in_features, full, rows=tuple(tuple(held) for held in rows))
    linear.shard_sizes = [sum(stop - start for start, stop in held) for held in rows]
    linear.out_features = sum(linear.shard_sizes)


def row_parallel(linear: Linear, columns: tuple[int, int], group: TensorParallelGroup) -> None:
    """Keep input columns ``columns``; the outputs of all ranks are summed."""
    start, stop = columns
    linear.packed = linear.packed.columns(start, stop)
    linear.tp_shard = LinearShard(linear.in_features, (linear.out_features,), columns=(start, stop))
    linear.in_features = stop - start
    if group.rank != 0:
        linear.bias = None  # added once, by rank 0
    linear.reduce = group.all_reduce


class VocabParallelEmbedding(VocabEmbedding):
    """The rows of the vocabulary ``[start, stop)``; the all-reduce fills in the rest. An
    embedding kept quantized (a GGUF file's blocks) keeps its part of them; the scale
    (Gemma's) is applied to the whole rows, as the whole embedding does."""

    def __init__(self, whole: VocabEmbedding, start: int, stop: int, group: TensorParallelGroup):
        nn.Module.__init__(self)
        self.vocab_size = whole.vocab_size
        self.scale = whole.scale
        self.start, self.stop, self.group = start, stop, group
        self.packed = None if whole.packed is None else whole.packed.rows([(start, stop)])
        weight = whole.weight.data if whole.packed is not None else whole.weight.data[start:stop].clone()
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        outside = (input_ids < self.start) | (input_ids >= self.stop)
        local = (input_ids - self.start).masked_fill(outside, 0)
        if self.packed is None:
            rows = F.embedding(local, self.weight)
        else:
            rows = self.packed.gather_rows(local.reshape(-1)).to(self.weight.dtype).view(*local.shape, -1)
        rows = self.group.all_reduce(rows.masked_fill_(outside.unsqueeze(-1), 0))
        if self.scale is None:
            return rows
        return rows * torch.tensor(self.scale, dtype=rows.dtype, device=rows.device)


def vocab_parallel_head(head: LMHead, start: int, stop: int, group: TensorParallelGroup) -> None:
    """Score the vocabulary ``[start, stop)`` here; rank 0 gets the whole logits (the
    other ranks keep their part, which nothing reads). A forward hook, as gpt-fast adds
    its all-reduces: the head's own forward is unchanged."""
    head.packed = head.packed.rows([(start, stop)])
    if head.bias is not None:
        head.bias = nn.Parameter(head.bias.data[start:stop].clone(), requires_grad=False)
    part, vocab = vocab_part(head.vocab_size, group.world_size), head.vocab_size

    def gather(module: nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        padded = F.pad(logits, (0, part - logits.shape[-1]))
        parts = group.gather(padded)
        return logits if parts is None else torch.cat(parts, dim=-1)[..., :vocab]

    head.register_forward_hook(gather)
