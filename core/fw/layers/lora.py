"""LoRA for fw's linear layers, batched per step over the adapters present.

Every adaptable ``Linear`` gets a ``LoRALinear`` as its ``lora`` hook. The hook holds
``max_loras`` *slots* of zero-padded adapter weights (rank padded to ``max_rank``, so
any rank up to it fits; zero rows add nothing). The LoRA manager fills a slot when an
adapter becomes active. Before each forward pass the runner publishes a ``LoRABatch``:
which rows of the flattened batch use which slot. The hook then adds
``B @ A @ x`` to those rows only, one adapter at a time; rows of base-model requests
are never touched, and a step without adapters costs one attribute check per layer.

``apply_lora`` is the seam for a fused kernel (an SGMV-style shrink/expand over all
slots at once): it takes the same slot tensors and row groups, so a kernel can replace
the loop without the layers or the manager changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fw.layers.linear import Linear, LinearShard, MergedLinear


@dataclass
class LoRABatch:
    """Which slot each row of one step's flattened batch uses."""

    num_tokens: int = 0
    #: (slot, row indices) for each slot present; rows None means every row
    groups: list[tuple[int, torch.Tensor | None]] = field(default_factory=list)
    #: slot -> (adapter uid, name, folder) of the adapter in it, so a tensor-parallel
    #: worker can fill its own slots with its shard of the same adapters
    slot_adapters: dict[int, tuple[int, str, str]] = field(default_factory=dict)

    @classmethod
    def from_runs(cls, runs: list[tuple[int, int]], device: torch.device) -> "LoRABatch":
        """``runs`` are ``(slot, num_rows)`` in batch order (slot -1 = base model)."""
        total = sum(n for _, n in runs)
        rows: dict[int, list[int]] = {}
        start = 0
        for slot, n in runs:
            if slot >= 0:
                rows.setdefault(slot, []).extend(range(start, start + n))
            start += n
        groups = [(slot, None if len(r) == total else torch.tensor(r, dtype=torch.long, device=device))
                  for slot, r in rows.items()]
        return cls(total, groups)


class LoRAStep:
    """The per-model holder every ``LoRALinear`` reads; the runner sets ``batch``."""

    def __init__(self) -> None:
        self.batch = LoRABatch()


class LoRALinear:
    """The ``Linear.lora`` hook: ``max_loras`` slots of one layer's adapter weights.

    A ``MergedLinear`` (q/k/v, gate/up) keeps one LoRA pair per shard: the A matrices
    are stacked (``[slots, shards * rank, in]``, one GEMM reads all of them) and each
    shard's B fills that shard's output rows of ``[slots, out, rank]``.
    """

    def __init__(self, layer: Linear, *, max_loras: int, max_rank: int, dtype: torch.dtype,
                 device: torch.device, step: LoRAStep):
        sizes = layer.shard_sizes if isinstance(layer, MergedLinear) else [layer.out_features]
        self.shard_slices = [slice(sum(sizes[:i]), sum(sizes[:i + 1])) for i in range(len(sizes))]
        #: under tensor parallelism, the part of the full layer this rank holds
        self.tp_shard: LinearShard | None = layer.tp_shard
        self.max_rank = max_rank
        self.in_features = layer.in_features
        self.lora_a = torch.zeros(max_loras, len(sizes) * max_rank, layer.in_features, dtype=dtype, device=device)
        self.lora_b = torch.zeros(max_loras, layer.out_features, max_rank, dtype=dtype, device=device)
        #: slots holding weights for this layer (an adapter need not adapt every layer)
        self.filled: set[int] = set()
        self.step = step

    def shard_out_features(self, shard: int) -> int:
        sl = self.shard_slices[shard]
        return sl.stop - sl.start

    def adapter_shape(self, shard: int) -> tuple[int, int]:
        """(in, out) features of one shard of the full layer: what an adapter is trained for."""
        if self.tp_shard is None:
            return self.in_features, self.shard_out_features(shard)
        return self.tp_shard.in_features, self.tp_shard.shard_sizes[shard]

    def local_pair(self, shard: int, lora_a: torch.Tensor, lora_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The part of a full adapter pair this rank's shard of the layer applies: a
        column-parallel layer takes its rows of B; a row-parallel one its columns of A
        (its partial products are summed by the layer's all-reduce, with the base ones)."""
        held = self.tp_shard
        if held is None:
            return lora_a, lora_b
        if held.columns is not None:
            lora_a = lora_a[:, held.columns[0]:held.columns[1]].contiguous()
        if held.rows is not None:
            lora_b = torch.cat([lora_b[start:stop] for start, stop in held.rows[shard]])
        return lora_a, lora_b

    def set_slot(self, slot: int, shard: int, lora_a: torch.Tensor, lora_b: torch.Tensor) -> None:
        """Copy one shard's pair into ``slot``; ``lora_b`` already carries the scale."""
        rank, rows = lora_a.shape[0], self.shard_slices[shard]
        base = shard * self.max_rank
        self.lora_a[slot, base: base + rank].copy_(lora_a)
        self.lora_b[slot, rows, :rank].copy_(lora_b)
        self.filled.add(slot)

    def clear_slot(self, slot: int) -> None:
        self.lora_a[slot].zero_()
        self.lora_b[slot].zero_()
        self.filled.discard(slot)

    def __call__(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        batch = self.step.batch
        groups = [g for g in batch.groups if g[0] in self.filled]
        if not groups:
            return out
        if x.shape[0] != batch.num_tokens:
            raise RuntimeError(f"a LoRA layer got {x.shape[0]} rows but the step has {batch.num_tokens} "
                               "tokens: LoRA layers must see the whole flattened batch")
        return apply_lora(x, out, self.lora_a, self.lora_b, self.shard_slices, groups)


def apply_lora(x: torch.Tensor, out: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor,
               shard_slices: list[slice], groups: list[tuple[int, torch.Tensor | None]]) -> torch.Tensor:
    """``out[rows] += B[slot] @ A[slot] @ x[rows]`` for each ``(slot, rows)``, in place.

    Shrink: ``x @ A.T`` gives ``shards * rank`` columns; expand: each shard's columns
    times its B fill that shard's output slice.
    """
    rank = lora_b.shape[-1]
    for slot, rows in groups:
        xs = x if rows is None else x.index_select(0, rows)
        shrunk = xs.to(lora_a.dtype) @ lora_a[slot].T
        if len(shard_slices) == 1:
            delta = shrunk @ lora_b[slot].T
        else:
            delta = torch.cat([shrunk[:, i * rank:(i + 1) * rank] @ lora_b[slot, sl].T
                               for i, sl in enumerate(shard_slices)], dim=-1)
        delta = delta.to(out.dtype)
        if rows is None:
            out.add_(delta)
        else:
            out.index_add_(0, rows, delta)
    return out
