"""Soak: rounds of concurrent streams over a real engine where half the clients vanish
mid-stream (and some non-streamed clients give up). Every finished stream is whole, and
after each round the engine is back to idle: no running or waiting request, no KV block
in use, as /metrics reports it. Run over the engine-core process `fw serve` starts, and
over the in-thread engine (--disable-frontend-multiprocessing)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from fw_builtins.commands.client import SSELines

from tests.core.server.conftest import real_engine_server

ROUNDS = 3
STREAMS = 24
TOKENS = 48
# A leaving client asks for far more: the engine runs ahead of the client, so on a loaded
# machine a 48-token request could finish, its whole stream written to the socket, before
# the client had read the three chunks after which it leaves; it would then count as
# finished by length, not aborted.
LEAVER_TOKENS = 480


async def _client(url: str, index: int) -> str:
    """Odd clients leave after three chunks, every fourth non-streamed one times out; the
    rest read to [DONE]. Returns what happened."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        body = {"prompt": f"Once upon a time {index}", "max_tokens": LEAVER_TOKENS if index % 2 else TOKENS,
                "ignore_eos": True, "temperature": 0}
        if index % 4 == 2:
            try:
                await http.post("/v1/completions", json=body, timeout=0.05)
            except httpx.TimeoutException:
                return "timed out"
            return "answered"
        async with http.stream("POST", "/v1/completions", json={**body, "stream": True}) as response:
            events, reason = 0, None
            splitter = SSELines()  # httpx's aiter_lines would also cut at a token's U+2028
            async for line in (line async for data in response.aiter_bytes() for line in splitter.feed(data)):
                if not line.startswith("data: "):
                    continue
                events += 1
                if index % 2 and events == 3:
                    return "left"
                if line == "data: [DONE]":
                    return "done" if reason == "length" else f"ended by {reason!r}"
                reason = json.loads(line[len("data: "):])["choices"][0]["finish_reason"] or reason
    return "no [DONE]"


def _metrics(url: str) -> dict[str, float]:
    values = {}
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("fw:") and "{" in line:
            name = line.split("{", 1)[0]
            labels = line[line.index("{"):line.index("}") + 1]
            if "finished_reason" in labels:
                name += "/" + labels.split('finished_reason="', 1)[1].split('"', 1)[0]
            values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


def _wait_idle(url: str, timeout: float = 30) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        values = _metrics(url)
        busy = [values.get(f"fw:{name}", 0) for name in ("num_requests_running", "num_requests_waiting",
                                                           "kv_cache_usage_perc")]
        if not any(busy):
            return values
        if time.monotonic() > deadline:
            raise AssertionError(f"the engine did not return to idle: {busy}")
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("frontend_multiprocessing", [True, False], ids=["engine-core", "in-thread"])
def test_rounds_of_streams_with_disconnects_leave_the_engine_idle(tiny_llama, frontend_multiprocessing):
    with real_engine_server(model=str(tiny_llama), dtype="float32", max_model_len=512,
                            disable_frontend_multiprocessing=not frontend_multiprocessing) as live:
        url = live.url

        async def round_() -> list[str]:
            return await asyncio.gather(*(_client(url, i) for i in range(STREAMS)))

        for _ in range(ROUNDS):
            outcomes = asyncio.run(round_())
            assert outcomes.count("left") == STREAMS // 2
            assert outcomes.count("done") == STREAMS // 4, outcomes
            assert set(outcomes) <= {"left", "done", "timed out", "answered"}, outcomes
            values = _wait_idle(url)
        assert values.get("fw:request_success_total/length", 0) >= ROUNDS * STREAMS // 4
        assert values.get("fw:request_success_total/abort", 0) >= ROUNDS * STREAMS // 2
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
