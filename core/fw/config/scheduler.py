"""SchedulerConfig: how much work one engine step takes on."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from fw.config.base import ConfigGroup, option


class SchedulerConfig(ConfigGroup):
    group_title = "SchedulerConfig"
    group_help = "Scheduler configuration."

    max_num_batched_tokens: int | None = option(
        None,
        "Maximum number of tokens processed in one engine step (prompt chunks and decode "
        "tokens together). Defaults to 2048, or --max-model-len when chunked prefill is off. "
        "Accepts k/K suffixes.",
        size=True,
    )
    max_num_seqs: int = option(128, "Maximum number of sequences processed in one engine step.")
    scheduling_policy: Literal["fcfs", "priority"] = option(
        "fcfs",
        '"fcfs": first come, first served. "priority": lower priority values first, then '
        "arrival time; the lowest-priority running request is preempted first.",
    )
    enable_chunked_prefill: bool = option(
        True, "Split long prompts into chunks that share steps with decoding requests."
    )
    max_num_partial_prefills: int | None = option(
        None,
        "At most this many requests advance their prompts in one step; the others wait for a later "
        "step. Unset: no limit (vLLM V1's behaviour).",
        ge=1,
    )
    max_long_partial_prefills: int | None = option(
        None,
        "Of those, at most this many whose prompts are longer than --long-prefill-token-threshold "
        "(so it needs one); shorter prompts may then go ahead of a long one in the queue. Unset: no limit.",
        ge=1,
    )
    long_prefill_token_threshold: int = option(
        0,
        "A prompt longer than this many tokens is long: it advances by at most this many tokens a "
        "step, so it shares steps with decoding requests (0: no threshold).",
        ge=0,
    )
    scheduler_cls: str | None = option(
        None,
        "The scheduler class, as an import path ('package.module.Class' or 'package.module:Class'); "
        "it must subclass fw.engine.scheduler.Scheduler. Unset: fw's own.",
    )
    disable_hybrid_kv_cache_manager: bool = option(
        False,
        "Give every attention layer the same KV cache layout. fw's KV cache manager is never "
        "hybrid, so this always holds.",
    )
    async_scheduling: bool = option(
        False,
        "Schedule the next step while the current one runs.",
        unsupported="fw schedules between steps on the engine thread; drop the option",
    )
    cuda_graph_sizes: list[int] = option(
        [],
        "Decode batch sizes to capture CUDA graphs for (on CUDA): one value N means 1, 2, 4 "
        "and every multiple of 8 up to N; several values are the sizes. Unset: up to "
        "min(2 * --max-num-seqs, 512). Sizes above --max-num-seqs are dropped.",
    )
    disable_chunked_mm_input: bool = option(
        False,
        "Never split a multimodal item across prefill chunks.",
        unsupported="fw serves text-only models",
    )

    @model_validator(mode="after")
    def _partial_prefills(self) -> "SchedulerConfig":
        long, total = self.max_long_partial_prefills, self.max_num_partial_prefills
        if long is not None and total is not None and long > total:
            raise ValueError(f"--max-long-partial-prefills ({long}) must not exceed "
                             f"--max-num-partial-prefills ({total})")
        if long is not None and not self.long_prefill_token_threshold:
            raise ValueError("--max-long-partial-prefills counts prompts longer than --long-prefill-token-threshold; "
                             "give that threshold too")
        if self.long_prefill_token_threshold and not self.enable_chunked_prefill:
            raise ValueError("--long-prefill-token-threshold splits prompts into chunks; it needs chunked "
                             "prefill (drop --no-enable-chunked-prefill)")
        return self

