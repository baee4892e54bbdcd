"""Soak: rounds of concurrent streams over a real engine where half the clients vanish
mid-stream (and some non-streamed clients give up). Every finished stream is whole, and
after each round the engine is back to idle: no running or waiting request, no KV block
in use, and /metrics agrees."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.core.server.helpers import metric, serve_config

ROUNDS = 3
STREAMS = 24
TOKENS = 48


async def _client(url: str, index: int) -> str:
    """Odd clients leave after three chunks, every fourth non-streamed one times out; the
    rest read to [DONE]. Returns what happened."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        body = {"prompt": f"Once upon a time {index}", "max_tokens": TOKENS, "ignore_eos": True,
                "temperature": 0}
        if index % 4 == 2:
            try:
                await http.post("/v1/completions", json=body, timeout=0.05)
            except httpx.TimeoutException:
                return "timed out"
            return "answered"
        async with http.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
            events, reason = 0, None
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                events += 1
                if index % 2 and events == 3:
                    return "left"
                if line == "data: [DONE]":
                    return "done" if reason == "length" else f"ended by {reason!r}"
                reason = json.loads(line[len("data: "):])["choices"][0]["finish_reason"] or reason
    return "no [DONE]"


def _wait_idle(engine, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = engine.stats()
        if stats.num_running == 0 and stats.num_waiting == 0 and stats.kv_cache_usage == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the engine did not return to idle: {engine.stats()}")


@pytest.mark.slow
def test_rounds_of_streams_with_disconnects_leave_the_engine_idle(start_server, tiny_llama):
    from fw.engine.async_engine import AsyncEngine

    options = {"model": str(tiny_llama), "dtype": "float32", "max_model_len": 256}
    engine = AsyncEngine.from_config(serve_config(**options).engine_config())
    try:
        live = start_server(engine, **options)

        async def round_() -> list[str]:
            return await asyncio.gather(*(_client(live.url, i) for i in range(STREAMS)))

        for _ in range(ROUNDS):
            outcomes = asyncio.run(round_())
            assert outcomes.count("left") == STREAMS // 2
            assert outcomes.count("done") == STREAMS // 4, outcomes
            assert set(outcomes) <= {"left", "done", "timed out", "answered"}, outcomes
            _wait_idle(engine)
            assert metric(live, "fw:num_requests_running") == 0 and metric(live, "fw:kv_cache_usage_perc") == 0
        stats = engine.stats()
        assert stats.num_free_blocks == stats.num_blocks
        assert metric(live, "fw:request_success_total", finished_reason="length") >= ROUNDS * STREAMS // 4
        assert metric(live, "fw:request_success_total", finished_reason="abort") >= ROUNDS * STREAMS // 2
    finally:
        asyncio.run(engine.shutdown())
