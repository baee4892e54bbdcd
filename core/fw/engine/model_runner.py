"""Runs one scheduled step: flatten the batch, one forward pass for every sequence's new
tokens together (prefill chunks and decode tokens alike; pure decode steps through the
fused CPU decode when the model describes its decoder, on CUDA through captured graphs),
logits only for the rows that are sampled (and prompt positions whose logprobs were asked
for), then sample on the logits' device; pooling
requests' rows go to the pooling runner (``fw.pooling.runner``) instead. The result is
one ``StepOutput``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from fw.attention.context import forward_context
from fw.engine import fused_decode
from fw.engine.constraints import no_token_error
from fw.engine.cuda_graphs import DecodeGraphs, GraphPlan
from fw.engine.flat_batch import BatchBuilder, FlatBatch
from fw.engine.kv_cache_manager import KVCacheManager
from fw.engine.request import Request
from fw.engine.sampler import prompt_logprob_entries, sample
from fw.engine.sampling_batch import SamplingBatch
from fw.engine.sampling_params import SamplingParams
from fw.pooling.params import PoolingParams
from fw.engine.scheduler import SchedulerOutput
from fw.engine.step_output import StepOutput
from fw.speculative.verify import verify
from fw.errors import FwError
from fw.layers.attention import Attention
from fw.pooling.runner import PoolingRunner

if TYPE_CHECKING:
    from fw.logits_processors.engine import EngineLogitsProcessors
    from fw.lora.manager import LoRAManager
    from fw.structured.manager import StructuredOutputManager


class ModelRunner:
    def __init__(self, model: nn.Module, kv_caches: list[torch.Tensor], block_size: int,
                 device: torch.device, *, vocab_size: int, max_num_seqs: int,
                 structured: StructuredOutputManager | None = None, lora: LoRAManager | None = None,
                 pooling: PoolingRunner | None = None, logits_processors: EngineLogitsProcessors | None = None):
        self.model = model
        #: the pooling half of each step (pooling models, --enable-embeddings), else None
        self.pooling = pooling
        self.lora = lora
        self.structured = structured
        self.block_size = block_size
        self.device = device
        #: the sampling state of the requests that are running
        self.sampling = SamplingBatch(max_num_seqs, vocab_size, logits_processors)
        #: the last sampling metadata and its copy on the logits' device
        self._on_device = None
        #: the step's inputs, written into buffers that persist from step to step
        self.batches = BatchBuilder(block_size, device, max_num_seqs)
        #: captured decode steps (CUDA graphs; ``capture_graphs``), else None
        self.graphs: DecodeGraphs | None = None
        self.bind_kv_caches(kv_caches)

    def bind_kv_caches(self, kv_caches: list[torch.Tensor]) -> None:
        """Give each attention layer its cache; the fused decode step is built over them."""
        layers = [m for m in self.model.modules() if isinstance(m, Attention)]
        if len(layers) != len(kv_caches):
            raise ValueError(f"model has {len(layers)} attention layers but {len(kv_caches)} KV caches")
        for layer, cache in zip(layers, kv_caches):
            layer.kv_cache = cache
        self.kv_caches = kv_caches
        #: the fused CPU decode of pure decode steps, when the model describes its decoder
        self.fused_decode = fused_decode.build(self.model)

    def prepare(self, scheduled: dict[str, int], requests: dict[str, Request],
                block_ids: dict[str, list[int]], proposals: dict[str, list[int]] | None = None) -> FlatBatch:
        """The step flattened into the runner's persistent input buffers; ``proposals``:
        the tokens a speculating request advances by after its last one."""
        return self.batches.build(scheduled, requests, block_ids, proposals)

    @torch.inference_mode()
    def execute(self, out: SchedulerOutput, requests: dict[str, Request], kv: KVCacheManager) -> StepOutput:
        """Run the step ``out`` schedules; ``requests`` holds every live request by id."""
        for request_id in (*out.finished_ids, *out.preempted):
            self.sampling.remove(request_id)
            self.batches.forget(request_id)
            if self.pooling is not None:
                self.pooling.forget(request_id)
        step = StepOutput(failed=self._load_adapters(out, requests))
        scheduled = {rid: n for rid, n in out.num_scheduled_tokens.items()
                     if requests[rid].parent_id not in step.failed}
        if not scheduled:
            return step
        batch = self.prepare(scheduled, requests, {rid: kv.block_ids(rid) for rid in scheduled}, out.spec_tokens)
        self._set_lora_mapping(scheduled, requests)
        hidden = self.run_model(batch)
        if batch.pool_spans:
            self.pooling.collect(batch.pool_spans, hidden, step)
        self._prompt_logprobs(batch, hidden, step)
        if batch.sample_rows:
            # The logits stay on their device: the sampler runs there, and only the sampled
            # ids (and requested logprobs) come back to the host.
            logits = self.model.compute_logits(self._sampled_hidden(batch, hidden)).float()
            if out.spec_tokens:
                self._verify(logits, batch.sample_requests, out.spec_tokens, step)
            else:
                self._sample(logits, batch.sample_requests, step)
        return step

    @staticmethod
    def _sampled_hidden(batch: FlatBatch, hidden: torch.Tensor) -> torch.Tensor:
        """The hidden states of the rows whose logits are sampled (all of them, as they
        are, in a decode step)."""
        if batch.samples_every_row:
            return hidden
        return hidden.index_select(0, torch.tensor(batch.sample_rows, dtype=torch.long, device=hidden.device))

    def capture_graphs(self, plan: GraphPlan, max_model_len: int) -> None:
        """Capture the decode steps of ``plan``'s sizes (CUDA; not with LoRA adapters,
        whose per-row mapping the graphs would freeze)."""
        if not plan.enabled or self.lora is not None:
            return
        self.graphs = DecodeGraphs(self.model, plan, self.device, max_seq_len=max_model_len,
                                   block_size=self.block_size)
        self.graphs.capture_all()

    def run_model(self, batch: FlatBatch) -> torch.Tensor:
        """The hidden states of the batch's rows (its KV written to the caches)."""
        if self.graphs is not None and batch.token_type_ids is None and self.graphs.takes(batch.metadata):
            return self.graphs.run(batch.input_ids, batch.positions, batch.metadata)
        with forward_context(batch.metadata):
            if self.fused_decode is not None and self.fused_decode.takes(batch.metadata):
                return self.fused_decode(batch.input_ids, batch.positions, batch.metadata)
            if batch.token_type_ids is not None:
                return self.model(batch.input_ids, batch.positions, token_type_ids=batch.token_type_ids)
            return self.model(batch.input_ids, batch.positions)

    def _sampling_metadata(self, logits: torch.Tensor, requests: list[Request]):
        """Grammar masks applied; each row's sampling settings (a request's state is kept
        from the first time it samples)."""
        if self.structured is not None:
            self.structured.apply(logits, requests)
        for request in requests:
            if request.request_id not in self.sampling:
                self.sampling.add(request.request_id, request.params, request.prompt_token_ids,
                                  request.output_token_ids, request.generator, request.eos_token_ids)
        meta = self.sampling.metadata([r.request_id for r in requests])
        if self._on_device is None or self._on_device[0] is not meta:  # reused metadata is moved once
            self._on_device = (meta, meta.to(logits.device))
        return self._on_device[1]

    def _sample(self, logits: torch.Tensor, requests: list[Request], step: StepOutput) -> None:
        metadata = self._sampling_metadata(logits, requests)
        masked = {row for row, r in enumerate(requests) if r.grammar is not None and r.grammar_active}
        result = sample(logits, metadata, masked)
        stuck = set(result.no_token)
        for row, (request, token) in enumerate(zip(requests, result.token_ids)):
            request_id = request.request_id
            if row in stuck:  # its constraints left no token: it ends with the reason, not this token
                step.failed.setdefault(request.parent_id, no_token_error(request))
                continue
            step.sampled[request_id] = [token]
            self.sampling.append(request_id, token)
            if result.logprobs[row] is not None:
                step.logprobs[request_id] = [result.logprobs[row]]
                step.sampled_logprobs[request_id] = [result.sampled_logprobs[row]]
            if request.grammar is not None and self.structured.advance(request, token):
                step.grammar_ended.add(request_id)

    def _verify(self, logits: torch.Tensor, rows: list[Request], proposals: dict[str, list[int]],
                step: StepOutput) -> None:
        """A step with speculating requests: every request's rows are verified (a request
        that did not speculate is one row with nothing to check, sampled as usual)."""
        meta = self._sampling_metadata(logits, rows)
        masked = {row for row, r in enumerate(rows) if r.grammar is not None and r.grammar_active}
        groups, requests = [], []
        for row, request in enumerate(rows):
            if row == 0 or rows[row - 1] is not request:
                groups.append((row, proposals.get(request.request_id, [])))
                requests.append(request)
        for request, (_, proposed), verified in zip(requests, groups, verify(logits, meta, groups, masked)):
            request_id = request.request_id
            if verified.no_token:  # its constraints left no token: it ends with the reason
                step.failed.setdefault(request.parent_id, no_token_error(request))
                continue
            step.sampled[request_id] = verified.tokens
            for token in verified.tokens:
                self.sampling.append(request_id, token)
            if verified.logprobs is not None:
                step.logprobs[request_id] = verified.logprobs
                step.sampled_logprobs[request_id] = verified.sampled_logprobs
            if proposed:
                step.speculated[request_id] = (len(proposed), verified.accepted)
            if request.grammar is not None and self.structured.advance(request, verified.tokens[0]):
                step.grammar_ended.add(request_id)

    def _load_adapters(self, out: SchedulerOutput, requests: dict[str, Request]) -> dict[str, FwError]:
        """Make sure this step's adapters are in memory. Requests whose adapter cannot be
        read again (its files vanished after --max-cpu-loras dropped it) fail, every
        sequence of them; the rest of the batch runs."""
        if self.lora is None:
            return {}
        scheduled = [requests[rid] for rid in out.num_scheduled_tokens]
        broken = self.lora.load_for_step(dict.fromkeys(r.lora for r in scheduled if r.lora is not None))
        return {r.parent_id: broken[r.lora] for r in scheduled if r.lora in broken}

    def warm_up(self, kv: KVCacheManager, max_model_len: int) -> None:
        """One prefill and one decode step, so the first request does not pay for lazy
        initialisation; the blocks and cache entries used are freed."""
        tokens = min(16, max_model_len - 2)
        generates = hasattr(self.model, "compute_logits")
        params = SamplingParams(max_tokens=1) if generates else PoolingParams(self.pooling.setup.tasks[0])
        request = Request("__warmup__", [0] * (tokens + 1), params, whole_prompt=not generates)
        if not kv.allocate_slots(request, tokens + 1):
            return
        for count in ((tokens, 1) if generates else (tokens + 1,)):
            self.execute(SchedulerOutput({request.request_id: count}, count), {request.request_id: request}, kv)
            request.num_computed_tokens += count
        self.sampling.remove(request.request_id)
        self.batches.forget(request.request_id)
        if self.pooling is not None:
            self.pooling.forget(request.request_id)
        kv.forget(request)
        kv.pool.reset_prefix_cache()

    def _set_lora_mapping(self, scheduled: dict[str, int], requests: dict[str, Request]) -> None:
        """Tell the LoRA layers which rows of the flattened batch use which adapter (rows
        follow ``scheduled``'s order, as in ``prepare``)."""
        if self.lora is not None:
            self.lora.prepare_step([(requests[rid].lora, n) for rid, n in scheduled.items()])

    def _prompt_logprobs(self, batch: FlatBatch, hidden: torch.Tensor, step: StepOutput) -> None:
        for request, row0, count, first_pos in batch.prompt_logprob_spans:
            # Entry p + 1 holds the logprob of prompt token p + 1 (nothing predicts the
            # first); a request recomputed after preemption must not record its prompt twice.
            recorded = max(len(request.prompt_logprobs) - 1, 0)
            skip = max(0, recorded - first_pos)
            if count - skip <= 0:
                continue
            logits = self.model.compute_logits(hidden[row0 + skip: row0 + count]).float().cpu()
            targets = request.prompt_token_ids[first_pos + skip + 1: first_pos + count + 1]
            step.prompt_logprobs[request.request_id] = prompt_logprob_entries(
                logits, targets, request.params.prompt_logprobs)
