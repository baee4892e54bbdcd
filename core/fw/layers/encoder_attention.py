"""Bidirectional attention for encoder models (BERT): every token of a prompt attends to
every token of the same prompt, and to nothing else in the flattened batch.

There is no KV cache: an encoder's prompt is computed whole in one step (the scheduler
never splits it), so the step's own keys and values are all it reads. The batch layout
comes from ``fw.attention.context`` like the decoder's attention.

Where fw's CPU kernels are built it is one call per layer (``encoder_attention`` in
``fw_kernels/cpu/attention.c``: one task per prompt and head, reading that prompt's keys
and values once for all its queries, straight from the projection's output). Otherwise
each prompt runs through ``scaled_dot_product_attention`` on its own. Either way a
prompt's result does not depend on the prompts beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fw.attention.context import get_forward_context
from fw.attention.metadata import AttentionMetadata
from fw_kernels import cpu


class EncoderAttention(nn.Module):
    def __init__(self, num_heads: int, head_size: int, scale: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_size = head_size
        self.scale = scale

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """query, key, value [T, heads * head_size] (any row stride) -> [T, heads * head_size]."""
        metadata = get_forward_context().metadata
        tokens, heads, size = query.shape[0], self.num_heads, self.head_size
        if cpu.supports(query, key, value) and key.stride(0) == value.stride(0) \
                and all(t.stride(-1) == 1 for t in (query, key, value)):
            starts, longest = _prompt_starts(metadata)
            return cpu.encoder_attention(query, key, value, starts, heads, self.scale, max_len=longest)
        out = torch.empty_like(query, memory_format=torch.contiguous_format)
        starts = metadata.query_start_loc_host
        for start, end in zip(starts, starts[1:]):
            q, k, v = (t[start:end].reshape(end - start, heads, size).transpose(0, 1) for t in (query, key, value))
            attended = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            out[start:end] = attended.transpose(0, 1).reshape(end - start, heads * size)
        return out


def _prompt_starts(metadata: AttentionMetadata) -> tuple[torch.Tensor, int]:
    """The prompts' first rows and the end (int64), and the longest prompt; built once per
    step, shared by every layer."""
    if "encoder_starts" not in metadata.derived:
        starts = metadata.query_start_loc_host
        longest = max(b - a for a, b in zip(starts, starts[1:]))
        metadata.derived["encoder_starts"] = (torch.tensor(starts, dtype=torch.int64), longest)
    return metadata.derived["encoder_starts"]
