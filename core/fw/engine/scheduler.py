"""The continuous-batching scheduler (vLLM v1's contract).

Each step it decides how many tokens every request advances: ``{request_id: n}``. A
prompt chunk, a prefix-cache hit and a decode token are all the same thing — tokens a
request advances — so prefill and decode share one step under one token budget.
When KV blocks run out, the lowest-priority running request is preempted by recompute:
its blocks are freed and it goes back to the front of the waiting queue, to be
recomputed (mostly from the prefix cache) later with its generated tokens kept.
Pooling requests share the queue and the budget: they advance through their prompt and
finish when the step that completes it has pooled them; an encoder's prompt is scheduled
whole or not at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from fw.config import SchedulerConfig
from fw.engine.kv_cache_manager import KVCacheManager
from fw.engine.request import Request, RequestStatus
from fw.engine.step_output import StepOutput
from fw.registry import import_target


@dataclass
class SchedulerOutput:
    #: request id -> tokens it advances this step (in batch order)
    num_scheduled_tokens: dict[str, int] = field(default_factory=dict)
    total_num_scheduled_tokens: int = 0
    #: requests preempted while making this schedule
    preempted: list[str] = field(default_factory=list)
    #: requests that finished (stopped, aborted, failed) since the previous schedule
    finished_ids: list[str] = field(default_factory=list)
    #: request id -> the proposed tokens it advances by after its last one (speculative
    #: decoding; counted in num_scheduled_tokens)
    spec_tokens: dict[str, list[int]] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.num_scheduled_tokens


@dataclass
class PrefillCount:
    """Requests advancing their prompts in this step, for the partial-prefill limits."""

    total: int = 0
    long: int = 0

    def add(self, long: bool) -> None:
        self.total += 1
        self.long += long


class Scheduler:
    def __init__(self, scheduler_config: SchedulerConfig, kv: KVCacheManager, max_model_len: int, *,
                 max_loras: int, clock: Callable[[], float] = time.monotonic):
        """``scheduler_config`` as the engine resolved it (its --max-num-batched-tokens
        set); ``max_loras``: the adapters one step may serve (--max-loras; 0 without LoRA)."""
        self.max_num_seqs = scheduler_config.max_num_seqs
        self.policy = scheduler_config.scheduling_policy
        self.chunked_prefill = scheduler_config.enable_chunked_prefill
        self.max_num_batched_tokens = scheduler_config.max_num_batched_tokens
        #: --long-prefill-token-threshold (0: none), --max-num-partial-prefills and
        #: --max-long-partial-prefills (None: no limit)
        self.long_threshold = scheduler_config.long_prefill_token_threshold
        self.max_prefills = scheduler_config.max_num_partial_prefills
        self.max_long_prefills = scheduler_config.max_long_partial_prefills
        self.max_model_len = max_model_len
        self.max_loras = max_loras
        self.kv = kv
        self.clock = clock
        self.requests: dict[str, Request] = {}
        self.waiting: list[Request] = []
        self.running: list[Request] = []
        self.num_preemptions = 0
        self._finished_ids: list[str] = []

    # -- queue management --------------------------------------------------------------

    def add_request(self, request: Request) -> None:
        self.requests[request.request_id] = request
        self.waiting.append(request)

    def _pick_waiting(self) -> Request:
        if self.policy == "priority":
            return min(self.waiting, key=Request.sort_key)
        return self.waiting[0]

    def _pick_victim(self) -> Request:
        if self.policy == "priority":
            return max(self.running, key=Request.sort_key)
        return self.running[-1]

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    def has_unfinished_requests(self) -> bool:
        return bool(self.waiting or self.running)

    # -- scheduling --------------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput(finished_ids=self._finished_ids)
        self._finished_ids = []
        budget = self.max_num_batched_tokens
        now = self.clock()

        # 1. Running requests first: decode tokens and the rest of chunked prompts.
        prefills = PrefillCount()
        index = 0
        while index < len(self.running) and budget > 0:
            request = self.running[index]
            known = self._step_tokens(request, request.num_computed_tokens)
            proposals = request.spec_tokens[:budget - known] if known == 1 else []
            num_new = min(known + len(proposals), budget)  # >= 1: a running request has a token to compute
            scheduled = True
            if proposals and not self.kv.allocate_slots(request, num_new):
                proposals, num_new = [], known  # a guess never costs another request its place
            while not self.kv.allocate_slots(request, num_new):
                victim = self._pick_victim()
                budget += out.num_scheduled_tokens.get(victim.request_id, 0)
                self._preempt(victim, out)
                if victim is request:
                    scheduled = False
                    break
            if scheduled:
                out.num_scheduled_tokens[request.request_id] = num_new
                if proposals:
                    out.spec_tokens[request.request_id] = proposals
                budget -= num_new
                index = self.running.index(request) + 1
                if request.num_computed_tokens < request.num_prompt_tokens:
                    prefills.add(self._is_long(request))
            else:
                index = min(index, len(self.running))

        # 2. Waiting requests, unless this step already had to preempt.
        # A request whose adapter would exceed --max-loras, or a long prompt beyond
        # --max-long-partial-prefills, steps aside for this step (keeping its place in the
        # queue), so the requests behind it are not held up.
        loras = {r.lora for r in self.running if r.lora is not None}
        blocked: list[Request] = []
        while self.waiting and budget > 0 and not out.preempted and len(self.running) < self.max_num_seqs:
            request = self._pick_waiting()
            if self.max_prefills is not None and prefills.total >= self.max_prefills:
                break
            long = self._is_long(request)
            if ((request.lora is not None and request.lora not in loras and len(loras) >= self.max_loras > 0)
                    or (long and self.max_long_prefills is not None and prefills.long >= self.max_long_prefills)):
                self.waiting.remove(request)
                blocked.append(request)
                continue
            computed, num_cached = self.kv.get_computed_blocks(request)
            num_new = self._step_tokens(request, num_cached)
            if num_new > budget and (not self.chunked_prefill or request.whole_prompt):
                break
            num_new = min(num_new, budget)
            prefills.add(long)
            if not self.kv.allocate_slots(request, num_new, computed):
                break
            self.waiting.remove(request)
            self.running.append(request)
            if request.lora is not None:
                loras.add(request.lora)
            request.status = RequestStatus.RUNNING
            request.num_computed_tokens = num_cached
            if request.num_cached_tokens < 0:
                request.num_cached_tokens = num_cached
            if request.first_scheduled_time is None:
                request.first_scheduled_time = now
            out.num_scheduled_tokens[request.request_id] = num_new
            budget -= num_new
        self.waiting[:0] = blocked

        out.total_num_scheduled_tokens = self.max_num_batched_tokens - budget
        return out

    def _is_long(self, request: Request) -> bool:
        return 0 < self.long_threshold < request.num_prompt_tokens

    def _step_tokens(self, request: Request, computed: int) -> int:
        """Tokens ``request`` may advance from ``computed``: the rest, but a prompt by at
        most --long-prefill-token-threshold a step."""
        remaining = request.num_tokens - computed
        if self.long_threshold > 0 and computed < request.num_prompt_tokens and not request.whole_prompt:
            return min(remaining, self.long_threshold)
        return remaining

    def _preempt(self, request: Request, out: SchedulerOutput) -> None:
        self.running.remove(request)
        out.spec_tokens.pop(request.request_id, None)
        request.spec_tokens = []
        self.kv.free(request)
        request.status = RequestStatus.PREEMPTED
        request.num_computed_tokens = 0
        self.num_preemptions += 1
        out.num_scheduled_tokens.pop(request.request_id, None)
        out.preempted.append(request.request_id)
        self.waiting.insert(0, request)

    # -- after the forward pass ----------------------------------------------------------

    def update_from_output(self, out: SchedulerOutput, step: StepOutput) -> list[Request]:
        """Advance computed counts, append sampled tokens, finish requests that hit EOS,
        a stop token, max_tokens, the context limit or the end of their grammar, and end
        the requests the step failed. Returns the requests whose output changed."""
        changed = self._fail(step.failed)
        now = self.clock()
        for request_id, num_tokens in out.num_scheduled_tokens.items():
            request = self.requests.get(request_id)
            if request is None:
                continue
            proposed, accepted = step.speculated.get(request_id, (0, 0))
            request.num_computed_tokens += num_tokens - (proposed - accepted)  # rejected proposals' KV is stale
            if request_id in step.pooled:
                self.finish(request, RequestStatus.FINISHED_STOPPED)
                changed.append(request)
                continue
            new_tokens = step.sampled.get(request_id)
            if not new_tokens:
                continue
            for appended, token in enumerate(new_tokens, start=1):
                request.append_token(token)
                if request.first_token_time is None:
                    request.first_token_time = now
                request.last_token_time = now
                status = self._check_stop(request, token)
                if status is not None:
                    self.finish(request, status)
                    if appended < len(new_tokens):  # what follows a stop was never generated
                        step.truncate(request_id, appended)
                    break
            if request_id in step.grammar_ended:
                self.finish(request, RequestStatus.FINISHED_STOPPED)
            changed.append(request)
        return changed

    def _fail(self, failed: dict[str, object]) -> list[Request]:
        """End every sequence of the failed parents. Blocks allocated for tokens they were
        scheduled for but never computed leave the prefix cache first."""
        ended = [r for r in self.requests.values() if r.parent_id in failed] if failed else []
        for request in ended:
            self.kv.discard_uncomputed(request)
            self.finish(request, RequestStatus.FINISHED_ABORTED)
        return ended

    def _check_stop(self, request: Request, token: int) -> RequestStatus | None:
        params = request.params
        produced = request.num_output_tokens
        if produced >= params.min_tokens:
            if not params.ignore_eos and token in request.eos_token_ids:
                return RequestStatus.FINISHED_STOPPED
            if token in params.stop_token_ids:
                request.stop_reason = token
                return RequestStatus.FINISHED_STOPPED
        if produced >= request.max_tokens or request.num_tokens >= self.max_model_len:
            return RequestStatus.FINISHED_LENGTH
        return None

    def finish(self, request: Request, status: RequestStatus) -> None:
        """End a request now (stop string, abort, ...); its blocks are freed at once."""
        if request.status.finished:
            return
        if request in self.running:
            self.running.remove(request)
        elif request in self.waiting:
            self.waiting.remove(request)
        request.status = status
        request.finished_time = self.clock()
        self.kv.forget(request)
        self.requests.pop(request.request_id, None)
        self._finished_ids.append(request.request_id)


def scheduler_class(path: str | None) -> type[Scheduler]:
    """--scheduler-cls: fw's Scheduler, or the subclass at the import path ``path``
    ("package.module.Class" or "package.module:Class"); ValueError names what is wrong."""
    if path is None:
        return Scheduler
    target = path if ":" in path else ":".join(path.rsplit(".", 1))
    try:
        cls = import_target(target)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"--scheduler-cls: cannot import {path!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Scheduler)):
        raise ValueError(f"--scheduler-cls: {path!r} is not a subclass of fw.engine.scheduler.Scheduler")
    return cls

