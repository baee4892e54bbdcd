"""Concurrency and clients that go away: every stream completes; a disconnect aborts."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import openai
import pytest

from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import metric

HI = [{"role": "user", "content": "hi"}]


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_32_concurrent_streams_all_complete(start_server):
    engine = FakeEngine(token_delay=0.002)
    live = start_server(engine)

    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[str, str | None]:
        text, reason = "", None
        stream = await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": f"request {i}"}], max_tokens=24, stream=True)
        async for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                reason = choice.finish_reason or reason
        return text, reason

    async def main() -> list[tuple[str, str | None]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=60) as http:
            client = openai.AsyncOpenAI(base_url=f"{live.url}/v1", api_key="x", http_client=http, max_retries=0)
            return await asyncio.gather(*(one(client, i) for i in range(32)))

    results = asyncio.run(main())
    assert len(results) == 32
    assert all(len(text) == 24 and reason == "length" for text, reason in results)
    assert not engine.running and not engine.aborted
    assert metric(live, "fw:request_success_total", finished_reason="length") == 32
    assert metric(live, "fw:generation_tokens_total") == 32 * 24


def test_disconnect_mid_stream_aborts(start_server):
    engine = FakeEngine(token_delay=0.05)
    live = start_server(engine)
    with live.http() as http:
        with http.stream("POST", "/v1/completions", json={"prompt": "a", "max_tokens": 200, "stream": True,
                                                           "request_id": "gone"}) as response:
            lines = response.iter_lines()
            seen = [line for _, line in zip(range(3), lines)]
            assert seen[0].startswith("data: ")
            assert metric(live, "fw:num_requests_running") == 1
    wait_until(lambda: "cmpl-gone" in engine.aborted)
    assert not engine.running
    assert metric(live, "fw:num_requests_running") == 0
    assert metric(live, "fw:kv_cache_usage_perc") == 0
    assert metric(live, "fw:request_success_total", finished_reason="abort") == 1


def test_disconnect_while_waiting_for_a_full_answer_aborts(start_server):
    engine = FakeEngine(token_delay=0.05)
    live = start_server(engine)
    with live.http() as http, pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", json={"messages": HI, "max_tokens": 200, "request_id": "slow"},
                  timeout=0.5)
    wait_until(lambda: "chatcmpl-slow" in engine.aborted)
    assert not engine.running and metric(live, "fw:num_requests_running") == 0


def test_disconnect_aborts_every_prompt_of_a_batch(start_server):
    engine = FakeEngine(token_delay=0.05)
    live = start_server(engine)
    with live.http() as http:
        with http.stream("POST", "/v1/completions", json={
                "prompt": ["a", "b", "c"], "max_tokens": 200, "stream": True, "request_id": "batch"}) as response:
            next(response.iter_lines())
    wait_until(lambda: {"cmpl-batch-0", "cmpl-batch-1", "cmpl-batch-2"} <= set(engine.aborted))
    assert not engine.running


def test_request_metrics_are_recorded(server):
    server.openai().completions.create(model="fake-model", prompt="abc", max_tokens=5)
    assert metric(server, "fw:prompt_tokens_total") == 4
    assert metric(server, "fw:generation_tokens_total") == 5
    assert metric(server, "fw:time_to_first_token_seconds_count") == 1
    assert metric(server, "fw:e2e_request_latency_seconds_count") == 1
    assert metric(server, "fw:request_queue_time_seconds_count") == 1
    assert metric(server, "fw:inter_token_latency_seconds_count") == 4
    assert metric(server, "fw:request_success_total", finished_reason="length", model_name="fake-model") == 1


def test_metric_names_follow_vllm(server):
    with server.http() as http:
        text = http.get("/metrics").text
    names = set(re.findall(r"^(fw:[a-z0-9_]+)", text, flags=re.M))
    for expected in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc",
                     "prefix_cache_queries_total", "prefix_cache_hits_total", "prompt_tokens_total",
                     "generation_tokens_total", "num_preemptions_total",
                     "time_to_first_token_seconds_bucket", "inter_token_latency_seconds_bucket",
                     "e2e_request_latency_seconds_bucket", "request_queue_time_seconds_bucket"):
        assert f"fw:{expected}" in names, expected
    assert 'fw:num_requests_running{engine="0",model_name="fake-model"}' in text
    assert 'fw:engine_alive{engine="0",model_name="fake-model"} 1.0' in text
    assert "_created" not in text
