"""The periodic engine-statistics log line (off with --disable-log-stats)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from fw.engine.protocol import EngineClient
from fw.server.metrics import ServerMetrics

logger = logging.getLogger("fw.server.stats")

INTERVAL_S = 10.0


async def log_stats_forever(engine: EngineClient, metrics: ServerMetrics, interval: float = INTERVAL_S) -> None:
    """Every ``interval`` seconds, one line of throughput, queue and KV-cache figures;
    nothing while the server is idle."""
    last = (time.monotonic(), metrics.total_prompt_tokens, metrics.total_generation_tokens)
    spec_last = (0, 0, 0, [])
    while True:
        await asyncio.sleep(interval)
        now, prompt, generated = time.monotonic(), metrics.total_prompt_tokens, metrics.total_generation_tokens
        stats = engine.stats()
        elapsed = max(now - last[0], 1e-9)
        busy = stats.num_running or stats.num_waiting or prompt != last[1] or generated != last[2]
        if busy:
            hit_rate = (100.0 * stats.prefix_cache_hits / stats.prefix_cache_queries
                        if stats.prefix_cache_queries else 0.0)
            logger.info(
                "prompt throughput %.1f tok/s, generation throughput %.1f tok/s, running %d, "
                "waiting %d, KV cache usage %.1f%%, prefix cache hit rate %.1f%%",
                (prompt - last[1]) / elapsed, (generated - last[2]) / elapsed, stats.num_running,
                stats.num_waiting, 100.0 * stats.kv_cache_usage, hit_rate,
            )
            if stats.spec_accepted_per_position:
                spec_last = _log_speculation(stats, spec_last, elapsed)
        last = (now, prompt, generated)


def _log_speculation(stats, last: tuple, elapsed: float) -> tuple:
    """vLLM's SpecDecoding line over the interval: mean acceptance length, accepted and
    drafted throughput, acceptance rate overall and by position."""
    now = (stats.spec_num_drafts, stats.spec_num_draft_tokens, stats.spec_num_accepted_tokens,
           list(stats.spec_accepted_per_position))
    drafts, drafted, accepted = (a - b for a, b in zip(now[:3], last[:3]))
    if drafts:
        positions = [a - b for a, b in itertools.zip_longest(now[3], last[3], fillvalue=0)]
        logger.info(
            "speculative decoding: mean acceptance length %.2f, accepted throughput %.1f tok/s, drafted "
            "throughput %.1f tok/s, accepted %d of %d drafted tokens (%.1f%%), by position %s",
            1 + accepted / drafts, accepted / elapsed, drafted / elapsed, accepted, drafted,
            100.0 * accepted / max(drafted, 1), ", ".join(f"{count / drafts:.3f}" for count in positions))
    return now
