"""The synchronous engine: requests in, one step at a time, RequestOutputs out.

A request enters through one admission step (``fw.engine.admission``). A step is three
objects with small interfaces: the scheduler picks work, the runner runs it and returns a
``StepOutput``, the scheduler and the output processor take it in. Pooling requests
(``PoolingParams``) take the same path; an encoder model has no KV cache (its blocks are
the scheduler's bookkeeping only) and computes each prompt whole.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any, Callable

import torch

from fw.attention.kv_format import KVCacheFormat
from fw.config import EngineConfig
from fw.engine.admission import Admission, tokenize_prompt
from fw.engine.cuda_graphs import plan_for
from fw.engine.generation_config import sampling_defaults
from fw.engine.kv_cache_manager import KVCacheManager
from fw.engine.kv_sizing import allocate_kv_caches, fit_max_model_len, plan_kv_cache
from fw.engine.loras import EngineLoRAs
from fw.engine.model_builder import LoadedModel, build_model
from fw.engine.memory_profile import profile_for
from fw.engine.model_runner import ModelRunner
from fw.engine.output_processor import OutputProcessor
from fw.engine.outputs import RequestOutput
from fw.engine.prefault import Prefaulter
from fw.engine.protocol import EngineStats, ModelInfo, PromptInput
from fw.engine.request import Request, RequestStatus
from fw.engine.sampling_params import SamplingParams
from fw.engine.scheduler import scheduler_class
from fw.engine.step_timing import StepTiming
from fw.errors import ConfigurationError, InvalidParameterError
from fw.logits_processors.engine import EngineLogitsProcessors
from fw.logits_processors.interface import LogitsProcessorContext
from fw.lora.manager import LoRAManager
from fw.lora.request import LoRARequest
from fw.pooling.params import PoolingParams
from fw.pooling.runner import PoolingRunner
from fw.speculative.manager import Speculation
from fw.speculative.proposer import ProposerContext
from fw.structured.manager import StructuredOutputManager

logger = logging.getLogger("fw.engine")


class LLMEngine:
    def __init__(self, config: EngineConfig, loaded: LoadedModel,
                 on_phase: Callable[[str], None] | None = None):
        """``on_phase(name)`` hears each start-up phase as it begins (an engine core process
        reports them to the server that launched it)."""
        on_phase = on_phase or (lambda name: None)
        self.config = config
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.max_model_len = loaded.max_model_len
        self.pooling = loaded.pooling
        whole_prompts = self.pooling is not None and self.pooling.whole_prompts
        scheduler_config = config.scheduler.model_copy()
        if scheduler_config.max_num_batched_tokens is None:
            scheduler_config.max_num_batched_tokens = (
                2048 if scheduler_config.enable_chunked_prefill else max(self.max_model_len, 2048))
        elif not scheduler_config.enable_chunked_prefill and scheduler_config.max_num_batched_tokens < self.max_model_len:
            raise ConfigurationError(
                f"--max-num-batched-tokens ({scheduler_config.max_num_batched_tokens}) is smaller than "
                f"--max-model-len ({self.max_model_len}) with chunked prefill disabled: long prompts could "
                "never be scheduled; raise it or enable chunked prefill")
        elif whole_prompts and scheduler_config.max_num_batched_tokens < self.max_model_len:
            raise ConfigurationError(
                f"--max-num-batched-tokens ({scheduler_config.max_num_batched_tokens}) is smaller than "
                f"--max-model-len ({self.max_model_len}): an encoder computes each prompt in one step, so long "
                "prompts could never be scheduled; raise it or lower --max-model-len")
        self.scheduler_config = scheduler_config

        # LoRA slots are allocated before the KV cache is sized from the memory left.
        lora = (LoRAManager(config.lora, loaded.model, loaded.dtype, loaded.device)
                if config.lora.enable_lora else None)
        settings = config.speculative.settings()
        if settings is not None:
            on_phase("loading the speculative proposer")
        self.speculation = None if settings is None else Speculation(
            settings, ProposerContext(settings, config, self.tokenizer, loaded))
        on_phase("allocating the KV cache")
        start = time.perf_counter()
        cache = config.cache
        profile = profile_for(loaded, cache, scheduler_config, self.max_model_len)
        kv_format = KVCacheFormat.resolve(cache.kv_cache_dtype, cache.calculate_kv_scales, loaded.dtype)
        plan = plan_kv_cache(loaded.model, loaded.dtype, loaded.device, block_size=cache.block_size,
                             memory_bytes=cache.kv_cache_memory_bytes,
                             num_blocks_override=cache.num_gpu_blocks_override,
                             max_model_len=self.max_model_len, max_num_seqs=scheduler_config.max_num_seqs,
                             gpu_memory_utilization=cache.gpu_memory_utilization,
                             extra_layers=self.speculation.proposer.kv_layers() if self.speculation else (),
                             profiled_bytes=profile.kv_bytes if profile else None, kv_format=kv_format)
        self.max_model_len = fit_max_model_len(plan, self.max_model_len, explicit=config.model.max_model_len is not None)
        kv_caches = allocate_kv_caches(loaded.model, plan, loaded.dtype, loaded.device)
        #: faults the fresh cache's pages in while the CPU has time (stopped before they are freed)
        self.prefault = Prefaulter(kv_caches).start()
        #: False for an encoder: its blocks hold nothing, and nothing is cached across prompts
        self.has_kv_cache = bool(kv_caches)
        self.kv = KVCacheManager(plan.num_blocks, cache.block_size, cache.enable_prefix_caching and self.has_kv_cache,
                                 hash_algo=cache.prefix_caching_hash_algo)
        if self.speculation is not None:
            self.speculation.bind(self.kv, plan, self.max_model_len)
        if self.has_kv_cache:
            logger.info(
                "KV cache (%s): %d blocks of %d tokens = %d tokens (%.1f MiB); max concurrency at %d tokens per "
                "request: %.1fx (sized in %.2fs)", kv_format.describe(), plan.num_blocks, plan.block_size, plan.num_tokens,
                plan.total_bytes / 2**20, self.max_model_len, plan.num_tokens / self.max_model_len,
                time.perf_counter() - start)
        else:
            logger.info("no KV cache: an encoder computes each prompt whole, in one step")
        self.scheduler = scheduler_class(scheduler_config.scheduler_cls)(
            scheduler_config, self.kv, self.max_model_len, max_loras=config.lora.max_loras if lora else 0)
        self.loras = EngineLoRAs(lora, lambda: self.scheduler.requests.values())
        vocab_size = loaded.hf_config.vocab_size
        self.structured = StructuredOutputManager(config.structured_outputs, self.tokenizer, vocab_size)
        self.eos_token_ids = _eos_token_ids(self.tokenizer, loaded.hf_config, loaded.generation_config)
        model = config.model
        processors = EngineLogitsProcessors.build(
            LogitsProcessorContext(vocab_size, loaded.device, self.eos_token_ids),
            model.logits_processors, model.logits_processor_pattern)
        self.runner = ModelRunner(loaded.model, kv_caches, cache.block_size, loaded.device, vocab_size=vocab_size,
                                  max_num_seqs=scheduler_config.max_num_seqs, structured=self.structured, lora=lora,
                                  pooling=PoolingRunner(loaded.model, self.pooling) if self.pooling else None,
                                  logits_processors=processors)
        self.output = OutputProcessor(self.tokenizer)
        observe = config.observability
        self.timing = (StepTiming(loaded.model, forward=observe.detailed("model"), execute=observe.detailed("worker"))
                       if observe.collect_detailed_traces else None)
        self.admission = Admission(
            max_model_len=self.max_model_len, vocab_size=vocab_size, max_num_seqs=scheduler_config.max_num_seqs,
            max_logprobs=model.max_logprobs, num_kv_blocks=plan.num_blocks, block_size=cache.block_size,
            tokenizer=self.tokenizer, compile_constraint=self.structured.compile,
            first_tokens=self.structured.first_token_mask, eos_token_ids=self.eos_token_ids,
            defaults=sampling_defaults(model.generation_config, model.override_generation_config,
                                       loaded.generation_config),
            runner=self.pooling.runner if self.pooling else "generate", pooling=self.pooling,
            logits_processors=processors)
        on_phase("warming up")
        self._warm_up()
        self._capture_graphs(lora is None and self.has_kv_cache and self.pooling is None)
        for index, module in enumerate(config.lora.lora_modules if lora else ()):
            self.add_lora(LoRARequest(module.name, index + 1, module.path, module.base_model_name))

    @classmethod
    def from_config(cls, config: EngineConfig, on_phase: Callable[[str], None] | None = None) -> "LLMEngine":
        torch.manual_seed(config.model.seed)
        if on_phase is not None:
            on_phase("loading the model")
        loaded = build_model(config)
        try:
            return cls(config, loaded, on_phase)
        except BaseException:
            loaded.shutdown()
            raise

    def shutdown(self) -> None:
        """Stop what the engine started besides itself (tensor-parallel workers, the prefault thread)."""
        self.prefault.stop()
        self.loaded.shutdown()

    # -- facts -------------------------------------------------------------------------

    def model_info(self) -> ModelInfo:
        model = self.config.model
        names = model.served_model_name or [model.model or "SmolLM2-135M-Instruct"]
        return ModelInfo(
            name=names[0], served_model_names=list(names), path=str(self.loaded.path),
            max_model_len=self.max_model_len, vocab_size=self.loaded.hf_config.vocab_size,
            max_logprobs=model.max_logprobs, eos_token_ids=list(self.eos_token_ids),
            chat_template=getattr(self.tokenizer, "chat_template", None), runner=self.admission.runner,
            pooling=self.pooling, max_new_tokens=self.admission.defaults.get("max_tokens"),
        )

    @property
    def generation_defaults(self) -> dict[str, Any]:
        """The sampling defaults requests get for what they leave unset (SamplingParams' names)."""
        return self.admission.defaults

    def default_sampling_params(self) -> SamplingParams:
        """The model's generation_config defaults, else fw's."""
        return SamplingParams(**self.admission.defaults)

    def stats(self) -> EngineStats:
        spec = self.speculation
        return EngineStats(
            num_running=self.scheduler.num_running, num_waiting=self.scheduler.num_waiting,
            kv_cache_usage=self.kv.usage() if self.has_kv_cache else 0.0, num_blocks=self.kv.num_blocks,
            num_free_blocks=self.kv.pool.num_free_blocks, prefix_cache_queries=self.kv.prefix_queries,
            prefix_cache_hits=self.kv.prefix_hits, num_preemptions=self.scheduler.num_preemptions,
            **({} if spec is None else dict(
                spec_num_drafts=spec.num_drafts, spec_num_draft_tokens=spec.num_draft_tokens,
                spec_num_accepted_tokens=spec.num_accepted_tokens,
                spec_accepted_per_position=list(spec.accepted_per_position))),
        )

    # -- requests ----------------------------------------------------------------------

    def add_request(self, request_id: str, prompt: PromptInput, params: SamplingParams | PoolingParams, *,
                    arrival_time: float | None = None, priority: int = 0, lora_request: Any = None,
                    keep_special_ids: frozenset[int] = frozenset(),
                    reasoning_end_ids: tuple[int, ...] | None = None) -> None:
        """Admit and queue a request (``InvalidParameterError`` names what is wrong).
        ``keep_special_ids``: special tokens its text keeps (parser markers);
        ``reasoning_end_ids``: with a structured-output constraint, the token ids that end
        the model's reasoning; the constraint applies after them. With ``PoolingParams`` it
        is a pooling request (``prompt`` may carry ``token_type_ids``)."""
        if self.output.has(request_id):
            raise InvalidParameterError("request_id", f"request {request_id!r} is already running")
        if priority and self.scheduler.policy != "priority":
            raise InvalidParameterError("priority", "priority scheduling is off; start with --scheduling-policy priority")
        if isinstance(params, PoolingParams):
            self._add_pooling(request_id, prompt, params, arrival_time, priority)
            return
        adapter = self.loras.resolve(lora_request)
        text, prompt_ids = tokenize_prompt(self.tokenizer, prompt)
        text, prompt_ids, params = self.admission.admit(text, prompt_ids, params)
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

    def _add_pooling(self, request_id: str, prompt: PromptInput, params: PoolingParams,
                     arrival_time: float | None, priority: int) -> None:
        text, prompt_ids = tokenize_prompt(self.tokenizer, prompt)
        types = prompt.get("token_type_ids") if isinstance(prompt, dict) else None
        text, prompt_ids, params, types = self.admission.admit_pooling(text, prompt_ids, params, types)
        # Never from the prefix cache: a cached prefix would leave only the last tokens to
        # compute, in a smaller step whose kernels may differ (the int4 method's), and the
        # same text must give the same vector whatever was asked before.
        request = Request(request_id, prompt_ids, params, arrival_time=arrival_time, priority=priority,
                          token_type_ids=types, whole_prompt=self.pooling.whole_prompts, skip_prefix_cache=True)
        self.output.add_pooling(request, text)
        self.scheduler.add_request(request)

    def abort_request(self, request_ids: list[str] | str) -> list[RequestOutput]:
        if isinstance(request_ids, str):
            request_ids = [request_ids]
        aborted = []
        for request_id in request_ids:
            for child in self.output.children(request_id):
                self.scheduler.finish(child, RequestStatus.FINISHED_ABORTED)
                aborted.append(child)
        return self.output.aborted(aborted)

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_unfinished_requests()

    # -- the step ----------------------------------------------------------------------

    def step(self) -> list[RequestOutput]:
        """Schedule, execute, update."""
        self.loras.reap()
        out = self.scheduler.schedule()
        if out.is_empty:
            return []
        if self.speculation is not None:
            self.speculation.forget(out.finished_ids, out.preempted)
        if self.timing is not None:
            result = self.timing.run(lambda: self.runner.execute(out, self.scheduler.requests, self.kv),
                                     [self.scheduler.requests[rid] for rid in out.num_scheduled_tokens])
        else:
            result = self.runner.execute(out, self.scheduler.requests, self.kv)
        changed = self.scheduler.update_from_output(out, result)
        outputs = self.output.process(changed, result, on_stop=self._finish_stopped)
        if self.speculation is not None:
            for request_id, (proposed, accepted) in result.speculated.items():
                self.speculation.record(request_id, proposed, accepted)
            self.speculation.propose(self.scheduler.running)
        return outputs

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

    def _capture_graphs(self, applies: bool) -> None:
        plan = plan_for(self.config, self.scheduler_config, self.loaded.device)
        if not (plan.enabled and applies):
            logger.debug("decode steps run eagerly: %s", plan.reason or "LoRA, pooling or no KV cache")
            return
        start = time.perf_counter()
        self.runner.capture_graphs(plan, self.max_model_len)
        logger.info("captured CUDA graphs of decode steps for batch sizes %s in %.2fs", plan.sizes,
                    time.perf_counter() - start)

    # -- LoRA adapters (fw.engine.loras) -------------------------------------------------

    def add_lora(self, lora_request: LoRARequest) -> bool:
        return self.loras.add(lora_request)

    def remove_lora(self, lora_name: str) -> bool:
        return self.loras.remove(lora_name)

    def list_loras(self) -> list[LoRARequest]:
        return self.loras.registered()


def _eos_token_ids(tokenizer: Any, hf_config: Any, generation_config: dict) -> tuple[int, ...]:
    ids: list[int] = []
    for source in (generation_config.get("eos_token_id"), getattr(hf_config, "eos_token_id", None),
                   getattr(tokenizer, "eos_token_id", None)):
        if source is None:
            continue
        ids.extend(source if isinstance(source, list) else [source])
    return tuple(dict.fromkeys(int(i) for i in ids))
