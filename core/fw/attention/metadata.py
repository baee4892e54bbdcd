"""What one forward pass tells attention about the flattened batch.

The batch is flattened: the new tokens of every scheduled sequence sit one after another
(``query_start_loc`` marks where each sequence's tokens start). Each sequence's keys and
values live in the paged KV cache: ``block_table[i]`` lists the blocks of sequence ``i``
in order, and token ``t`` of the flattened batch writes its key/value to cache slot
``slot_mapping[t]`` (``block_id * block_size + offset``).

KV-cache layout, per layer: ``kv_cache[0]`` holds keys and ``kv_cache[1]`` values, each
``[num_blocks, block_size, num_kv_heads, head_size]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


def token_context_lens(query_start: list[int], seq_lens: list[int]) -> list[int]:
    """Each token's context length when every token of a flattened step is a sequence of
    its own: a sequence's last token sees its whole context (``seq_lens[i]``), each earlier
    token of its chunk one position fewer. Keys and values are written before attention
    reads them, so this is causal attention over the cache."""
    return [length - (last - 1 - row)
            for first, last, length in zip(query_start, query_start[1:], seq_lens) for row in range(first, last)]


@dataclass
class AttentionMetadata:
    #: tokens in the flattened batch (rows of query/key/value)
    num_tokens: int
    #: sequences in the batch
    num_seqs: int
    #: the longest query chunk this step (1 when every sequence is decoding)
    max_query_len: int
    #: the longest context (cached + new tokens) this step
    max_seq_len: int
    #: int32 [num_seqs + 1]: sequence i's tokens are rows query_start_loc[i]:query_start_loc[i+1]
    query_start_loc: torch.Tensor
    #: int32 [num_seqs]: context length of sequence i after this step's tokens
    seq_lens: torch.Tensor
    #: int32 [num_seqs, max_blocks]: the KV blocks of each sequence (padding is arbitrary)
    block_table: torch.Tensor
    #: int64 [num_tokens]: the cache slot each new token's key/value is written to
    slot_mapping: torch.Tensor
    #: host copies, so CPU backends need not synchronise to read them
    query_start_loc_host: list[int]
    seq_lens_host: list[int]
    #: backend-private values derived from the above, computed by the first layer that
    #: needs them and reused by the others (every layer sees the same batch)
    derived: dict[str, Any] = field(default_factory=dict)

    @property
    def is_pure_decode(self) -> bool:
        return self.max_query_len == 1

    def token_rows(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Every token of the step as a sequence of its own, for a decode kernel: its
        sequence's block-table row and its own context length (a prompt token at position p
        sees the first p + 1 positions: ``token_context_lens``), and the longest such
        context. So causal prefill, chunked prefill over cached context and decoding are
        one job. Computed once for all layers; a pure decode step is its own rows."""
        if self.is_pure_decode:
            return self.block_table, self.seq_lens, self.max_seq_len
        if "token_rows" not in self.derived:
            starts = self.query_start_loc_host
            chunks = torch.tensor([starts[i + 1] - starts[i] for i in range(self.num_seqs)])
            owner = torch.repeat_interleave(torch.arange(self.num_seqs), chunks).to(self.block_table.device)
            lens = torch.tensor(token_context_lens(starts, self.seq_lens_host), dtype=torch.int32,
                                device=self.seq_lens.device)
            self.derived["token_rows"] = (self.block_table[owner].contiguous(), lens, self.max_seq_len)
        return self.derived["token_rows"]
