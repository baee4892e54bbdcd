"""What rank 0 sends the workers: the inputs of each forward pass and logits call.

A forward step carries everything a worker's copy of the model reads besides its own
weights: the flattened batch (token ids, positions), the attention metadata, the LoRA
mapping (which rows use which slot, and which adapter each slot holds) and the KV cache's
block count, so the worker sizes its cache as rank 0's. Tensors travel on the CPU; the
worker moves them to its device.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from fw.attention.metadata import AttentionMetadata
from fw.layers.lora import LoRABatch

_METADATA_TENSORS = ("query_start_loc", "seq_lens", "block_table", "slot_mapping")


@dataclass
class ForwardStep:
    input_ids: torch.Tensor
    positions: torch.Tensor
    metadata: AttentionMetadata
    #: (num_blocks, block_size) of rank 0's KV cache
    kv_blocks: tuple[int, int]
    lora: LoRABatch | None = None

    @classmethod
    def of(cls, input_ids: torch.Tensor, positions: torch.Tensor, metadata: AttentionMetadata,
           kv_blocks: tuple[int, int], lora: LoRABatch | None) -> "ForwardStep":
        return cls(input_ids.cpu(), positions.cpu(), _metadata_to(metadata, torch.device("cpu")), kv_blocks,
                   None if lora is None else _lora_to(lora, torch.device("cpu")))

    def to(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, AttentionMetadata, LoRABatch | None]:
        return (self.input_ids.to(device), self.positions.to(device), _metadata_to(self.metadata, device),
                None if self.lora is None else _lora_to(self.lora, device))


@dataclass
class LogitsStep:
    """Rank 0 computes logits for hidden states of this shape; they follow on the
    compute group."""

    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass
class Stop:
    """The engine is shutting down: leave the loop."""


def _metadata_to(metadata: AttentionMetadata, device: torch.device) -> AttentionMetadata:
    """A copy on ``device`` without the backend's per-step derived values."""
    moved = {name: getattr(metadata, name).to(device) for name in _METADATA_TENSORS}
    return dataclasses.replace(metadata, derived={}, **moved)


def _lora_to(batch: LoRABatch, device: torch.device) -> LoRABatch:
    groups = [(slot, None if rows is None else rows.to(device)) for slot, rows in batch.groups]
    return LoRABatch(batch.num_tokens, groups, dict(batch.slot_adapters))
