"""One step's batch flattened into the runner's inputs: every scheduled sequence's new
tokens one after another, their positions and cache slots, the attention metadata, and
which rows are sampled, pooled or scored for prompt logprobs.

``BatchBuilder.build`` writes them into the persistent buffers of
``fw.engine.input_buffers`` (no tensor is built per step); a decoding sequence's one
row is computed with plain integers, a prompt chunk's rows with numpy over the buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fw.attention.metadata import AttentionMetadata, token_context_lens
from fw.engine.input_buffers import InputBuffers
from fw.engine.request import Request
from fw.pooling.runner import PoolSpan


@dataclass
class FlatBatch:
    input_ids: torch.Tensor
    positions: torch.Tensor
    metadata: AttentionMetadata
    #: rows of the hidden states whose logits are sampled: one per sampling request, and
    #: one more per proposed token of a speculating request (its rows are consecutive)
    sample_rows: list[int]
    #: the request of each sampled row
    sample_requests: list[Request]
    #: request -> (first hidden row, rows, first prompt position) for prompt logprobs
    prompt_logprob_spans: list[tuple[Request, int, int, int]]
    #: the rows of pooling requests
    pool_spans: list[PoolSpan]
    #: every row's token type, when a scheduled request has them (BERT pairs), else None
    token_type_ids: torch.Tensor | None = None

    @property
    def samples_every_row(self) -> bool:
        """Whether the sampled rows are all the rows, in order (a decode step): the
        hidden states need no gather before the LM head."""
        return len(self.sample_rows) == self.metadata.num_tokens


def rows_as_sequences(query_start: list[int], seq_lens: list[int],
                      tables: list[list[int]]) -> tuple[list[int], list[int], list[list[int]]]:
    """A step whose sequences decode their last token and check proposals behind it, as a
    pure decode step: each row a sequence of its own over the same blocks, its context
    ending at its own position. Attention writes a step's keys and values before any
    query reads them (the backends' contract), so row ``j`` sees its sequence's rows
    before it and none after (``token_context_lens``): the same causal attention
    (``AttentionMetadata.token_rows`` does this for any step, at the attention), and the
    step runs as a decode step: CUDA graphs take it, and the fused CPU decoder prefetches
    its KV blocks."""
    row_lens = token_context_lens(query_start, seq_lens)
    row_tables = [table for first, last, table in zip(query_start, query_start[1:], tables) for _ in range(first, last)]
    return list(range(len(row_lens) + 1)), row_lens, row_tables


class BatchBuilder:
    def __init__(self, block_size: int, device: torch.device, max_num_seqs: int):
        self.block_size = block_size
        self.device = device
        self.buffers = InputBuffers(device, seqs=max_num_seqs)

    def forget(self, request_id: str) -> None:
        self.buffers.forget(request_id)

    def build(self, scheduled: dict[str, int], requests: dict[str, Request],
              block_ids: dict[str, list[int]], proposals: dict[str, list[int]] | None = None) -> FlatBatch:
        """``proposals``: the tokens a speculating request advances by after its last one."""
        proposals = proposals or {}
        bs, buffers = self.block_size, self.buffers
        num_tokens = sum(scheduled.values())
        width = max(len(block_ids[rid]) for rid in scheduled)
        # a step of rows as sequences has a sequence per row
        buffers.reserve(num_tokens, max(num_tokens, len(scheduled)), width)
        np_ids, np_pos, np_slots = buffers.numpy["input_ids"], buffers.numpy["positions"], buffers.numpy["slot_mapping"]
        query_start, seq_lens, owners = [0], [], []
        sample_rows: list[int] = []
        sample_requests: list[Request] = []
        spans, pool_spans = [], []
        types: list[int] | None = None
        row0 = 0
        for request_id, n in scheduled.items():
            request = requests[request_id]
            blocks = block_ids[request_id]
            start = request.num_computed_tokens
            end = start + n
            proposed = proposals.get(request_id, ())
            if n == 1:  # a decoding row: plain integers
                np_ids[row0] = request.all_token_ids[start]
                np_pos[row0] = start
                np_slots[row0] = blocks[start // bs] * bs + start % bs
            else:
                known = n - len(proposed)
                np_ids[row0:row0 + known] = request.all_token_ids[start:start + known]
                np_ids[row0 + known:row0 + n] = proposed
                pos = np_pos[row0:row0 + n]
                pos[:] = np.arange(start, end)
                np_slots[row0:row0 + n] = np.asarray(blocks, dtype=np.int64)[pos // bs] * bs + pos % bs
            query_start.append(row0 + n)
            seq_lens.append(end)
            owners.append(((request_id, 0), blocks))
            if request.token_type_ids is not None and types is None:
                types = [0] * row0
            if types is not None:
                types.extend(request.token_type_ids[start:end] if request.token_type_ids else [0] * n)
            if request.pooling is not None:
                pool_spans.append(PoolSpan(request, row0, n))
            else:
                if request.params.prompt_logprobs is not None and start < request.num_prompt_tokens - 1:
                    last = min(end, request.num_prompt_tokens - 1)
                    spans.append((request, row0, last - start, start))
                if end - len(proposed) == request.num_tokens:  # the chunk reaches the end: sample
                    for row in range(row0 + n - 1 - len(proposed), row0 + n):
                        sample_rows.append(row)
                        sample_requests.append(request)
            row0 += n
        if proposals and len(sample_rows) == num_tokens:  # only decoding rows: a decode step of rows
            query_start, seq_lens, tables = rows_as_sequences(query_start, seq_lens, [b for _, b in owners])
            owners = _row_owners(scheduled, tables)
        for row, (owner, blocks) in enumerate(owners):
            buffers.write_table_row(row, owner, blocks)
        num_seqs = len(seq_lens)
        buffers.numpy["query_start_loc"][:num_seqs + 1] = query_start
        buffers.numpy["seq_lens"][:num_seqs] = seq_lens
        views = buffers.views(num_tokens, num_seqs)
        metadata = AttentionMetadata(
            num_tokens=num_tokens, num_seqs=num_seqs,
            max_query_len=max(b - a for a, b in zip(query_start, query_start[1:])), max_seq_len=max(seq_lens),
            query_start_loc=views["query_start_loc"], seq_lens=views["seq_lens"],
            block_table=views["block_table"], slot_mapping=views["slot_mapping"],
            query_start_loc_host=query_start, seq_lens_host=seq_lens,
        )
        return FlatBatch(
            input_ids=views["input_ids"], positions=views["positions"],
            metadata=metadata, sample_rows=sample_rows, sample_requests=sample_requests,
            prompt_logprob_spans=spans, pool_spans=pool_spans,
            token_type_ids=None if types is None else torch.tensor(types, dtype=torch.long, device=self.device),
        )


def _row_owners(scheduled: dict[str, int], tables: list[list[int]]) -> list[tuple[tuple[str, int], list[int]]]:
    """Block-table rows of a step of rows as sequences: row ``j`` of a request's rows is
    owned by (request, j), so each keeps its blocks incrementally like any other row."""
    owners, index = [], 0
    for request_id, n in scheduled.items():
        for j in range(n):
            owners.append(((request_id, j), tables[index]))
            index += 1
    return owners
