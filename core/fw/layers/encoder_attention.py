"""Bidirectional attention for encoder models (BERT): every token of a prompt attends to
every token of the same prompt, and to nothing else in the flattened batch.

There is no KV cache: an encoder's prompt is computed whole in one step (the scheduler
never splits it), so the step's own keys and values are all it reads. The batch layout
comes from ``fw.attention.context`` like the decoder's attention.

Where fw's CPU kernels are built it is one call of the paged attention kernel per layer:
the step's keys, viewed as a cache of one-token blocks, are the pages, and each token's
"block table" lists its prompt's rows, so the kernel's causal context becomes the whole
prompt. Otherwise each prompt runs through ``scaled_dot_product_attention`` on its own.
Either way a prompt's result does not depend on the prompts beside it.
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
        if cpu.supports(query, key, value) and query.stride(-1) == 1:
            keys = key.contiguous().view(tokens, 1, heads, size)
            values = value.contiguous().view(tokens, 1, heads, size)
            table, lens, longest = _prompt_rows(metadata)
            out = cpu.paged_decode(query.view(tokens, heads, size), keys, values, table, lens, self.scale,
                                   max_len=longest)
            return out.view(tokens, heads * size)
        out = torch.empty_like(query, memory_format=torch.contiguous_format)
        starts = metadata.query_start_loc_host
        for start, end in zip(starts, starts[1:]):
            q, k, v = (t[start:end].reshape(end - start, heads, size).transpose(0, 1) for t in (query, key, value))
            attended = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            out[start:end] = attended.transpose(0, 1).reshape(end - start, heads * size)
        return out


def _prompt_rows(metadata: AttentionMetadata) -> tuple[torch.Tensor, torch.Tensor, int]:
    """For each token of the step: the rows of its prompt (int32 [T, longest]) and its
    prompt's length (int32 [T]); built once per step, shared by every layer."""
    if "encoder_rows" not in metadata.derived:
        starts = metadata.query_start_loc_host
        lengths = torch.tensor([b - a for a, b in zip(starts, starts[1:])])
        owner = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
        longest = int(lengths.max())
        # rows past a prompt's length are never read (the kernel stops at its length)
        table = (torch.tensor(starts[:-1])[owner][:, None] + torch.arange(longest)[None, :]).to(torch.int32)
        metadata.derived["encoder_rows"] = (table.contiguous(), lengths[owner].to(torch.int32).contiguous(), longest)
    return metadata.derived["encoder_rows"]
