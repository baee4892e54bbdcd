"""--skip-tokenizer-init over HTTP (a real engine on a tiny model): token ids in, token ids
out; what needs text is a 400 naming the parameter. return_token_ids on any server."""

from __future__ import annotations

import asyncio

import pytest

from fw.engine.async_engine import AsyncEngine
from tests.core.server.conftest import LiveServer
from tests.core.server.helpers import serve_config, sse_events

IDS = [5, 17, 33, 41, 8]


@pytest.fixture(scope="module")
def live(tiny_llama):
    config = serve_config(model=str(tiny_llama), dtype="float32", kv_cache_memory_bytes=2**22,
                          skip_tokenizer_init=True)
    engine = AsyncEngine.from_config(config.engine_config())
    server = LiveServer(engine, config).start()
    yield server
    server.stop()
    asyncio.run(engine.shutdown())


def test_token_ids_in_token_ids_out(live):
    with live.http() as http:
        body = http.post("/v1/completions", json={"prompt": IDS, "max_tokens": 4, "temperature": 0,
                                                  "ignore_eos": True, "logprobs": 1}).json()
    (choice,) = body["choices"]
    assert choice["text"] == "" and choice["prompt_token_ids"] == IDS and len(choice["token_ids"]) == 4
    assert choice["logprobs"]["tokens"] == [f"token_id:{t}" for t in choice["token_ids"]]
    assert choice["logprobs"]["text_offset"] == [0] * 4  # every token starts where the empty text does
    with live.http() as http:
        response = http.post("/v1/completions", json={"prompt": IDS, "max_tokens": 4, "temperature": 0,
                                                      "ignore_eos": True, "stream": True})
    chunks = [e for e in sse_events(response) if e != "[DONE]"]
    streamed = [t for c in chunks for t in c["choices"][0]["token_ids"]]
    assert streamed == choice["token_ids"] and chunks[0]["choices"][0]["prompt_token_ids"] == IDS
    with live.http() as http:  # an echoed prompt has no text either: its ids say it
        echoed = http.post("/v1/completions", json={"prompt": IDS, "max_tokens": 2, "echo": True}).json()
    assert echoed["choices"][0]["text"] == "" and echoed["choices"][0]["prompt_token_ids"] == IDS


@pytest.mark.parametrize("path, body, param", [
    ("/v1/completions", {"prompt": "hello"}, "prompt"),
    ("/v1/completions", {"prompt": IDS, "stop": ["x"]}, "stop"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "messages"),
    ("/detokenize", {"tokens": IDS}, "tokens"),
])
def test_what_needs_text_is_refused(live, path, body, param):
    with live.http() as http:
        response = http.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and "--skip-tokenizer-init" in error["message"]


def test_return_token_ids_on_a_server_with_a_tokenizer(server):
    with server.http() as http:
        body = http.post("/v1/completions", json={"prompt": "ab", "max_tokens": 3, "return_token_ids": True}).json()
        plain = http.post("/v1/completions", json={"prompt": "ab", "max_tokens": 3}).json()
    choice = body["choices"][0]
    assert choice["prompt_token_ids"] == server.engine.tokenizer.encode("ab") and len(choice["token_ids"]) == 3
    assert plain["choices"][0]["token_ids"] is None
