"""SchedulerConfig: how much work one engine step takes on."""

from __future__ import annotations

from typing import Literal

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
