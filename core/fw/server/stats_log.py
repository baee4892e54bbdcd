"""The periodic engine-statistics log line (off with --disable-log-stats)."""

from __future__ import annotations

import asyncio
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
        last = (now, prompt, generated)
