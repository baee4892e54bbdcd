"""Runs one scheduled step: flatten the batch, one forward pass for every sequence's new
tokens together (prefill chunks and decode tokens alike), logits only for the rows that
are sampled (and prompt positions whose logprobs were asked for), then sample."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from fw.attention.context import forward_context
from fw.attention.metadata import AttentionMetadata
from fw.engine.kv_cache_manager import KVCacheManager
from fw.engine.request import Request
from fw.engine.sampling_params import SamplingParams
from fw.engine.sampler import SampleResult, prompt_logprob_entries, sample
from fw.engine.scheduler import SchedulerOutput
from fw.layers.attention import Attention

if TYPE_CHECKING:
    from fw.lora.manager import LoRAManager


@dataclass
class StepOutput:
    #: request id -> tokens sampled this step (empty for partial prompt chunks)
    sampled: dict[str, list[int]] = field(default_factory=dict)
    result: SampleResult | None = None
    #: request ids in the order of result rows
    sampled_ids: list[str] = field(default_factory=list)


@dataclass
class FlatBatch:
    input_ids: torch.Tensor
    positions: torch.Tensor
    metadata: AttentionMetadata
    #: rows of the hidden states whose logits are sampled, one per sampling request
    sample_rows: list[int]
    sample_requests: list[Request]
    #: request -> (first hidden row, rows, first prompt position) for prompt logprobs
    prompt_logprob_spans: list[tuple[Request, int, int, int]]


class ModelRunner:
    def __init__(self, model: nn.Module, kv_caches: list[torch.Tensor], block_size: int,
                 device: torch.device, lora: LoRAManager | None = None):
        self.model = model
        self.lora = lora
        #: the structured-output manager, set by the engine
        self.structured = None
        self.kv_caches = kv_caches
        self.block_size = block_size
        self.device = device
        layers = [m for m in model.modules() if isinstance(m, Attention)]
        if len(layers) != len(kv_caches):
            raise ValueError(f"model has {len(layers)} attention layers but {len(kv_caches)} KV caches")
        for layer, cache in zip(layers, kv_caches):
            layer.kv_cache = cache

    def prepare(self, out: SchedulerOutput, requests: dict[str, Request],
                block_ids: dict[str, list[int]]) -> FlatBatch:
        bs = self.block_size
        ids: list[int] = []
        positions: list[np.ndarray] = []
        slots: list[np.ndarray] = []
        query_start = [0]
        seq_lens: list[int] = []
        tables: list[list[int]] = []
        sample_rows: list[int] = []
        sample_requests: list[Request] = []
        spans = []
        for request_id, n in out.num_scheduled_tokens.items():
            request = requests[request_id]
            start = request.num_computed_tokens
            end = start + n
            ids.extend(request.all_token_ids[start:end])
            pos = np.arange(start, end, dtype=np.int64)
            blocks = np.asarray(block_ids[request_id], dtype=np.int64)
            positions.append(pos)
            slots.append(blocks[pos // bs] * bs + pos % bs)
            row0 = query_start[-1]
            query_start.append(row0 + n)
            seq_lens.append(end)
            tables.append(block_ids[request_id])
            if request.params.prompt_logprobs is not None and start < request.num_prompt_tokens - 1:
                last = min(end, request.num_prompt_tokens - 1)
                spans.append((request, row0, last - start, start))
            if end == request.num_tokens:  # the chunk reaches the end: sample the next token
                sample_rows.append(row0 + n - 1)
                sample_requests.append(request)
        width = max(len(t) for t in tables)
        table = np.zeros((len(tables), width), dtype=np.int32)
        for i, row in enumerate(tables):
            table[i, : len(row)] = row
        dev = self.device
        metadata = AttentionMetadata(
            num_tokens=len(ids), num_seqs=len(seq_lens),
            max_query_len=max(b - a for a, b in zip(query_start, query_start[1:])),
            max_seq_len=max(seq_lens),
            query_start_loc=torch.tensor(query_start, dtype=torch.int32, device=dev),
            seq_lens=torch.tensor(seq_lens, dtype=torch.int32, device=dev),
            block_table=torch.from_numpy(table).to(dev),
            slot_mapping=torch.from_numpy(np.concatenate(slots)).to(dev),
            query_start_loc_host=query_start, seq_lens_host=seq_lens,
        )
        return FlatBatch(
            input_ids=torch.tensor(ids, dtype=torch.long, device=dev),
            positions=torch.from_numpy(np.concatenate(positions)).to(dev),
            metadata=metadata, sample_rows=sample_rows, sample_requests=sample_requests,
            prompt_logprob_spans=spans,
        )

    @torch.inference_mode()
    def execute(self, out: SchedulerOutput, requests: dict[str, Request],
                block_ids: dict[str, list[int]]) -> StepOutput:
        batch = self.prepare(out, requests, block_ids)
        self._set_lora_mapping(out, requests)
        with forward_context(batch.metadata, self.kv_caches):
            hidden = self.model(batch.input_ids, batch.positions)
        self._record_prompt_logprobs(batch, hidden)
        step = StepOutput()
        if not batch.sample_rows:
            return step
        rows = torch.tensor(batch.sample_rows, dtype=torch.long, device=hidden.device)
        logits = self.model.compute_logits(hidden.index_select(0, rows)).float().cpu()
        if self.structured is not None:
            self.structured.apply(logits, batch.sample_requests)
        result = sample(logits, batch.sample_requests)
        for request, token in zip(batch.sample_requests, result.token_ids):
            step.sampled[request.request_id] = [token]
        step.result = result
        step.sampled_ids = [r.request_id for r in batch.sample_requests]
        return step

    def warm_up(self, kv: KVCacheManager, max_model_len: int) -> None:
        """One prefill and one decode step, so the first request does not pay for lazy
        initialisation; the blocks and cache entries used are freed."""
        tokens = min(16, max_model_len - 2)
        request = Request("__warmup__", [0] * (tokens + 1), SamplingParams(max_tokens=1))
        if not kv.allocate_slots(request, tokens + 1):
            return
        blocks = {request.request_id: kv.block_ids(request.request_id)}
        for count in (tokens, 1):
            self.execute(SchedulerOutput({request.request_id: count}, count), {request.request_id: request}, blocks)
            request.num_computed_tokens += count
        kv.forget(request)
        kv.pool.reset_prefix_cache()

    def _set_lora_mapping(self, out: SchedulerOutput, requests: dict[str, Request]) -> None:
        """Tell the LoRA layers which rows of the flattened batch use which adapter (rows
        follow ``out.num_scheduled_tokens``' order, as in ``prepare``)."""
        if self.lora is not None:
            self.lora.prepare_step([(requests[rid].lora, n) for rid, n in out.num_scheduled_tokens.items()])

    def _record_prompt_logprobs(self, batch: FlatBatch, hidden: torch.Tensor) -> None:
        for request, row0, count, first_pos in batch.prompt_logprob_spans:
            if not request.prompt_logprobs:
                request.prompt_logprobs.append(None)  # nothing predicts the first token
            # Entry p + 1 holds the logprob of prompt token p + 1; a request recomputed
            # after preemption must not record its prompt twice.
            skip = max(0, len(request.prompt_logprobs) - 1 - first_pos)
            if count - skip <= 0:
                continue
            logits = self.model.compute_logits(hidden[row0 + skip: row0 + count]).float().cpu()
            targets = request.prompt_token_ids[first_pos + skip + 1: first_pos + count + 1]
            request.prompt_logprobs.extend(
                prompt_logprob_entries(logits, targets, request.params.prompt_logprobs))
