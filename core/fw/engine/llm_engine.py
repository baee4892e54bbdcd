"""The synchronous engine: requests in, one step at a time, RequestOutputs out.

A step is three objects with small interfaces: the scheduler picks work, the runner
runs it, the scheduler and the output processor take in the results.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import torch

from fw.config import EngineConfig
from fw.engine.generation_config import sampling_defaults
from fw.engine.kv_cache_manager import KVCacheManager, cdiv
from fw.engine.kv_sizing import allocate_kv_caches, plan_kv_cache
from fw.engine.model_builder import ConfigurationError, LoadedModel, build_model
from fw.engine.model_runner import ModelRunner
from fw.engine.output_processor import OutputProcessor
from fw.engine.outputs import RequestOutput
from fw.engine.prompt import validate_and_prepare, tokenize_prompt
from fw.engine.protocol import EngineStats, ModelInfo, PromptInput
from fw.engine.request import Request, RequestStatus
from fw.engine.sampling_params import SamplingParams
from fw.engine.scheduler import SchedulerOutput, scheduler_class
from fw.engine.step_timing import StepTiming
from fw.errors import InvalidParameterError, NotSupportedError
from fw.lora.manager import Adapter, LoRAManager
from fw.lora.peft import LoRAAdapterError
from fw.lora.request import LoRARequest
from fw.structured.manager import StructuredOutputManager

logger = logging.getLogger("fw.engine")

class LLMEngine:
    def __init__(self, config: EngineConfig, loaded: LoadedModel):
        self.config = config
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.max_model_len = loaded.max_model_len
        scheduler_config = config.scheduler.model_copy()
        if scheduler_config.max_num_batched_tokens is None:
            scheduler_config.max_num_batched_tokens = (
                2048 if scheduler_config.enable_chunked_prefill else max(self.max_model_len, 2048))
        elif not scheduler_config.enable_chunked_prefill and scheduler_config.max_num_batched_tokens < self.max_model_len:
            raise ConfigurationError(
                f"--max-num-batched-tokens ({scheduler_config.max_num_batched_tokens}) is smaller than "
                f"--max-model-len ({self.max_model_len}) with chunked prefill disabled: long prompts could "
                "never be scheduled; raise it or enable chunked prefill")
        self.scheduler_config = scheduler_config

        # LoRA slots are allocated before the KV cache is sized from the memory left.
        self.lora = (LoRAManager(config.lora, loaded.model, loaded.dtype, loaded.device)
                     if config.lora.enable_lora else None)
        start = time.perf_counter()
        cache = config.cache
        plan = plan_kv_cache(loaded.model, loaded.dtype, loaded.device, block_size=cache.block_size,
                             memory_bytes=cache.kv_cache_memory_bytes,
                             num_blocks_override=cache.num_gpu_blocks_override,
                             max_model_len=self.max_model_len, max_num_seqs=scheduler_config.max_num_seqs,
                             gpu_memory_utilization=cache.gpu_memory_utilization)
        kv_caches = allocate_kv_caches(loaded.model, plan, loaded.dtype, loaded.device)
        self.kv = KVCacheManager(plan.num_blocks, cache.block_size, cache.enable_prefix_caching,
                                 hash_algo=cache.prefix_caching_hash_algo)
        logger.info(
            "KV cache: %d blocks of %d tokens = %d tokens (%.1f MiB); max concurrency at %d tokens per "
            "request: %.1fx (sized in %.2fs)", plan.num_blocks, plan.block_size, plan.num_tokens,
            plan.total_bytes / 2**20, self.max_model_len, plan.num_tokens / self.max_model_len,
            time.perf_counter() - start)
        self.scheduler = scheduler_class(scheduler_config.scheduler_cls)(
            scheduler_config, cache, self.kv, self.max_model_len, max_loras=config.lora.max_loras if self.lora else 0)
        self.runner = ModelRunner(loaded.model, kv_caches, cache.block_size, loaded.device, lora=self.lora)
        self.output = OutputProcessor(self.tokenizer)
        self.structured = StructuredOutputManager(config.structured_outputs, self.tokenizer,
                                                  loaded.hf_config.vocab_size)
        self.runner.structured = self.structured
        observe = config.observability
        self.timing = (StepTiming(loaded.model, forward=observe.detailed("model"), execute=observe.detailed("worker"))
                       if observe.collect_detailed_traces else None)
        self.eos_token_ids = _eos_token_ids(self.tokenizer, loaded.hf_config, loaded.generation_config)
        model = config.model
        self.generation_defaults = sampling_defaults(model.generation_config, model.override_generation_config,
                                                     loaded.generation_config)
        self._warm_up()
        for index, module in enumerate(config.lora.lora_modules if self.lora else ()):
            self.add_lora(LoRARequest(module.name, index + 1, module.path, module.base_model_name))

    @classmethod
    def from_config(cls, config: EngineConfig) -> "LLMEngine":
        torch.manual_seed(config.model.seed)
        return cls(config, build_model(config))

    # -- facts -------------------------------------------------------------------------

    def model_info(self) -> ModelInfo:
        model = self.config.model
        names = model.served_model_name or [model.model or "SmolLM2-135M-Instruct"]
        return ModelInfo(
            name=names[0], served_model_names=list(names), path=str(self.loaded.path),
            max_model_len=self.max_model_len, vocab_size=self.loaded.hf_config.vocab_size,
            max_logprobs=model.max_logprobs, eos_token_ids=list(self.eos_token_ids),
            chat_template=getattr(self.tokenizer, "chat_template", None),
            generation_defaults=dict(self.generation_defaults),
        )

    def stats(self) -> EngineStats:
        return EngineStats(
            num_running=self.scheduler.num_running, num_waiting=self.scheduler.num_waiting,
            kv_cache_usage=self.kv.usage(), num_blocks=self.kv.num_blocks,
            num_free_blocks=self.kv.pool.num_free_blocks, prefix_cache_queries=self.kv.prefix_queries,
            prefix_cache_hits=self.kv.prefix_hits, num_preemptions=self.scheduler.num_preemptions,
        )

    # -- requests ----------------------------------------------------------------------

    def add_request(self, request_id: str, prompt: PromptInput, params: SamplingParams, *,
                    arrival_time: float | None = None, priority: int = 0, lora_request: Any = None,
                    keep_special_ids: frozenset[int] = frozenset(),
                    reasoning_end_ids: tuple[int, ...] | None = None) -> None:
        """Queue a request. ``reasoning_end_ids``: with a structured-output constraint, the
        token ids that end the model's reasoning; the constraint applies after them."""
        if self.output.has(request_id):
            raise InvalidParameterError("request_id", f"request {request_id!r} is already running")
        if priority and self.scheduler.policy != "priority":
            raise InvalidParameterError("priority", "priority scheduling is off; start with --scheduling-policy priority")
        adapter = self._resolve_lora(lora_request)
        text, prompt_ids = tokenize_prompt(self.tokenizer, prompt)
        params, prompt_ids = validate_and_prepare(self, params, prompt_ids)
        children = []
        for index in range(params.n):
            child_id = request_id if params.n == 1 else f"{index}_{request_id}"
            children.append(Request(child_id, prompt_ids, params, eos_token_ids=self.eos_token_ids,
                                    arrival_time=arrival_time, priority=priority, lora=adapter,
                                    parent_id=request_id, index=index))
        if params.structured_outputs is not None:
            for child in children:
                child.grammar = self.structured.new_matcher(params.structured_outputs)
                child.reasoning_end_ids = reasoning_end_ids or None
                child.grammar_active = not reasoning_end_ids
        self.output.add(request_id, text, prompt_ids, params, children, keep_special_ids=keep_special_ids,
                        lora_name=getattr(lora_request, "lora_name", None))
        for child in children:
            self.scheduler.add_request(child)

    def abort_request(self, request_ids: list[str] | str) -> list[RequestOutput]:
        if isinstance(request_ids, str):
            request_ids = [request_ids]
        aborted = []
        for request_id in request_ids:
            for child in self.output.children(request_id):
                self.scheduler.finish(child, RequestStatus.FINISHED_ABORTED)
                aborted.append(child)
        return self.output.process([], {}, on_stop=self._finish_stopped, extra_finished=aborted)

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_unfinished_requests()

    # -- the step ----------------------------------------------------------------------

    def step(self) -> list[RequestOutput]:
        self._reap_loras()
        out = self.scheduler.schedule()
        if out.is_empty:
            return []
        errors, failed = self._fail_unreadable_loras(out)
        if out.is_empty:
            return self._with_errors(self.output.process([], {}, on_stop=self._finish_stopped,
                                                         extra_finished=failed), errors)
        result = self._run(out)
        updated = self.scheduler.update_from_output(out, result.sampled)
        if result.result is not None:
            rows = {rid: i for i, rid in enumerate(result.sampled_ids)}
            for request in updated:
                row = rows[request.request_id]
                request.cumulative_logprob += result.result.sampled_logprobs[row]
                if result.result.logprobs[row] is not None:
                    request.output_logprobs.append(result.result.logprobs[row])
        self._advance_grammars(updated)
        finished_unsampled = [r for r in self._requests(out) if r.status.finished and r not in updated]
        outputs = self.output.process(updated, {r.request_id: 1 for r in updated}, on_stop=self._finish_stopped,
                                      extra_finished=finished_unsampled + failed)
        return self._with_errors(outputs, errors)

    def _advance_grammars(self, updated: list[Request]) -> None:
        """Feed each constrained sequence its new token; a completed grammar ends it."""
        for request in updated:
            if request.grammar is None:
                continue
            token = request.all_token_ids[-1]
            if not request.grammar_active:
                end = request.reasoning_end_ids
                if tuple(request.output_token_ids[-len(end):]) == end:
                    request.grammar_active = True
                continue
            if not request.grammar.accept_token(token):
                logger.warning("request %s: token %d rejected by its grammar", request.request_id, token)
            if request.grammar.is_terminated() and not request.status.finished:
                self.scheduler.finish(request, RequestStatus.FINISHED_STOPPED)

    def _requests(self, out: SchedulerOutput) -> list[Request]:
        return [r for rid in out.num_scheduled_tokens if (r := self._lookup(rid)) is not None]

    def _lookup(self, request_id: str) -> Request | None:
        return self.scheduler.requests.get(request_id)

    def _run(self, out: SchedulerOutput):
        requests = {rid: self.scheduler.requests[rid] for rid in out.num_scheduled_tokens}
        block_ids = {rid: self.kv.block_ids(rid) for rid in out.num_scheduled_tokens}
        if self.timing is not None:
            return self.timing.run(lambda: self.runner.execute(out, requests, block_ids), requests.values())
        return self.runner.execute(out, requests, block_ids)

    def _finish_stopped(self, request: Request) -> None:
        self.scheduler.finish(request, RequestStatus.FINISHED_STOPPED)

    def _warm_up(self) -> None:
        start = time.perf_counter()
        self.runner.warm_up(self.kv, self.max_model_len)
        # Everything built so far (model, tokenizer, plugins) lives as long as the engine:
        # keep it out of the cyclic collector, whose full passes over it otherwise cost
        # ~10% of a small decode step.
        gc.collect()
        gc.freeze()
        logger.info("warm-up done in %.2fs", time.perf_counter() - start)

    def add_lora(self, lora_request: LoRARequest) -> bool:
        """Register and load an adapter; its errors (missing files, rank, targets) raise
        ``LoRAAdapterError`` now. False if the name is already loaded from that folder."""
        self._reap_loras()
        return self._lora_manager().add(lora_request)

    def remove_lora(self, lora_name: str) -> bool:
        """Unregister an adapter at once (new requests for it fail); requests already
        running with it finish first, then its memory is released. False if unknown."""
        return self._lora_manager().remove(lora_name, self._loras_in_use())

    def list_loras(self) -> list[LoRARequest]:
        """The registered adapters, in registration order."""
        return self.lora.registered() if self.lora is not None else []

    def _lora_manager(self) -> LoRAManager:
        if self.lora is None:
            raise NotSupportedError("LoRA is not enabled; start the engine with --enable-lora",
                                    param="lora_request")
        return self.lora

    def _resolve_lora(self, lora_request: LoRARequest | None) -> Adapter | None:
        return None if lora_request is None else self._lora_manager().resolve(lora_request)

    def _fail_unreadable_loras(self, out: SchedulerOutput) -> tuple[dict[str, LoRAAdapterError], list[Request]]:
        """Make sure this step's adapters are in memory. A request whose adapter cannot be
        read again (its files vanished after it was dropped by --max-cpu-loras) is ended,
        every sample of it, and taken out of ``out``; the rest of the batch runs. Returns
        the error per parent request id and the requests ended."""
        if self.lora is None:
            return {}, []
        scheduled = self._requests(out)
        broken = self.lora.load_for_step(dict.fromkeys(r.lora for r in scheduled if r.lora is not None))
        errors = {r.parent_id: broken[r.lora] for r in scheduled if r.lora in broken}
        failed = []
        for parent_id, error in errors.items():
            logger.warning("request %s failed: %s", parent_id, error)
            for child in self.output.children(parent_id):
                out.total_num_scheduled_tokens -= out.num_scheduled_tokens.pop(child.request_id, 0)
                self.kv.discard_uncomputed(child)
                self.scheduler.finish(child, RequestStatus.FINISHED_ABORTED)
                failed.append(child)
        return errors, failed

    @staticmethod
    def _with_errors(outputs: list[RequestOutput], errors: dict[str, LoRAAdapterError]) -> list[RequestOutput]:
        for output in outputs if errors else ():
            output.error = errors.get(output.request_id)
        return outputs

    def _loras_in_use(self) -> list[Adapter]:
        return [r.lora for r in self.scheduler.requests.values() if r.lora is not None]

    def _reap_loras(self) -> None:
        if self.lora is not None and self.lora.retiring:
            self.lora.reap(self._loras_in_use())

    def blocks_needed(self, num_tokens: int) -> int:
        return cdiv(num_tokens, self.kv.block_size)


def _eos_token_ids(tokenizer: Any, hf_config: Any, generation_config: dict) -> tuple[int, ...]:
    ids: list[int] = []
    for source in (generation_config.get("eos_token_id"), getattr(hf_config, "eos_token_id", None),
                   getattr(tokenizer, "eos_token_id", None)):
        if source is None:
            continue
        ids.extend(source if isinstance(source, list) else [source])
    return tuple(dict.fromkeys(int(i) for i in ids))
