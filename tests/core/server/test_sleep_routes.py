"""POST /sleep, POST /wake_up and GET /is_sleeping over a real engine (tiny model):
503 while asleep, the same greedy text after waking, the API key guarding the routes,
and no routes without --enable-sleep-mode. The memory figures are tested at the engine
(tests/core/engine/test_sleep.py)."""

from __future__ import annotations

import asyncio

import pytest

from fw.engine.async_engine import AsyncEngine
from tests.core.server.conftest import LiveServer
from tests.core.server.helpers import serve_config

KEY = {"Authorization": "Bearer k"}


@pytest.fixture
def live(tiny_llama):
    config = serve_config(model=str(tiny_llama), dtype="float32", kv_cache_memory_bytes=2**22,
                          enable_sleep_mode=True, api_key=["k"])
    engine = AsyncEngine.from_config(config.engine_config())
    server = LiveServer(engine, config).start()
    yield server
    server.stop()
    asyncio.run(engine.shutdown())


def complete(http):
    return http.post("/v1/completions", headers=KEY, json={"prompt": "Hello there", "max_tokens": 8,
                                                           "temperature": 0, "ignore_eos": True})


@pytest.mark.parametrize("level", [1, 2])
def test_sleep_and_wake_over_http(live, level):
    with live.http() as http:
        before = complete(http).json()["choices"][0]["text"]
        assert http.post("/sleep", params={"level": level}).status_code == 401  # the key guards it
        assert http.post("/sleep", params={"level": level}, headers=KEY).status_code == 200
        assert http.get("/is_sleeping").json() == {"is_sleeping": True}
        refused = complete(http)
        assert refused.status_code == 503 and "wake_up" in refused.json()["error"]["message"]
        assert http.post("/wake_up", headers=KEY).status_code == 200
        assert http.get("/is_sleeping").json() == {"is_sleeping": False}
        assert complete(http).json()["choices"][0]["text"] == before


def test_bad_requests(live):
    with live.http() as http:
        assert http.post("/sleep", params={"level": 3}, headers=KEY).json()["error"]["param"] == "level"
        response = http.post("/wake_up", params={"tags": "weights"}, headers=KEY)
        assert response.status_code == 400 and response.json()["error"]["param"] == "tags"


def test_no_routes_without_sleep_mode(server):
    with server.http() as http:
        assert http.post("/sleep").status_code == 404 and http.get("/is_sleeping").status_code == 404
