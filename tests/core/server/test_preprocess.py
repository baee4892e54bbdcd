"""Admission that one client cannot starve: huge prompts are refused without being
tokenized, the work of preparing prompts runs off the event loop under its own bound
(503 beyond it), and a request cannot multiply itself past --max-num-seqs."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

import fw.server.preprocess as preprocess
from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import chunked, raw_http

HI = [{"role": "user", "content": "hi"}]


def error_of(response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()["error"]


@pytest.fixture
def encodes(monkeypatch) -> list[int]:
    """The length of every text the server tokenizes."""
    seen: list[int] = []
    real = preprocess._encode

    def spy(tokenizer, text, add_special_tokens):
        seen.append(len(text))
        return real(tokenizer, text, add_special_tokens)

    monkeypatch.setattr(preprocess, "_encode", spy)
    return seen


def test_the_longest_token_sets_the_character_limit(server):
    # the fake tokenizer's longest token is "<pad>" (5 characters); the context is 256
    with server.http() as http:
        assert http.post("/tokenize", json={"prompt": "x"}).json()["max_model_len"] == 256
    from fw.server.preprocess import longest_token_chars

    assert longest_token_chars(server.engine.tokenizer) == 5


@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", {"prompt": "x" * 1281}, "prompt"),
    ("/v1/completions", {"prompt": ["ok", "x" * 1281]}, "prompt[1]"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 1281}]}, "messages"),
    ("/tokenize", {"prompt": "x" * 1281}, "prompt"),
])
def test_a_prompt_longer_than_any_fitting_text_is_refused_untokenized(server, encodes, path, body, param):
    with server.http() as http:
        error = error_of(http.post(path, json=body))
    assert error["code"] == "context_length_exceeded" and error["param"] == param
    assert "1280 characters" in error["message"] and "256 tokens" in error["message"]
    assert all(length <= 1280 for length in encodes)  # the long text never reached the tokenizer


def test_a_text_at_the_limit_is_tokenized_and_measured_in_tokens(server, encodes):
    with server.http() as http:
        error = error_of(http.post("/v1/completions", json={"prompt": "x" * 1280}))
    assert "1281 tokens" in error["message"] and encodes == [1280]


def test_truncate_prompt_tokens_takes_long_texts(server):
    with server.http() as http:
        response = http.post("/v1/completions", json={"prompt": "x" * 5000, "truncate_prompt_tokens": 10,
                                                       "max_tokens": 1})
    assert response.status_code == 200, response.text
    assert server.engine.requests[-1][1]["prompt_token_ids"] == [server.engine.tokenizer.encode("x")[-1]] * 10


@pytest.mark.parametrize("body,param", [
    ({"prompt": ["a"] * 100, "n": 128}, "n"),
    ({"prompt": ["a"] * 129}, "prompt"),
    ({"prompt": [[5, 6]] * 65, "n": 2}, "n"),
])
def test_prompts_times_n_is_capped_by_max_num_seqs(server, encodes, body, param):
    with server.http() as http:
        error = error_of(http.post("/v1/completions", json={**body, "max_tokens": 1}))
    assert error["param"] == param and "--max-num-seqs" in error["message"] and "128" in error["message"]
    assert encodes == [] and server.engine.requests == []


def test_a_request_at_the_sequence_cap_runs(server):
    with server.http() as http:
        response = http.post("/v1/completions", json={"prompt": ["a", "b"], "n": 64, "max_tokens": 1})
        assert response.status_code == 200 and len(response.json()["choices"]) == 128
        error = error_of(http.post("/v1/chat/completions", json={"messages": HI, "n": 129}))
    assert error["param"] == "n"


def test_a_full_preprocess_pool_is_503_with_retry_after(start_server, monkeypatch):
    release = threading.Event()
    real = preprocess._encode

    def slow(tokenizer, text, add_special_tokens):
        release.wait(10)
        return real(tokenizer, text, add_special_tokens)

    monkeypatch.setattr(preprocess, "_encode", slow)
    live = start_server(preprocess_workers=1, preprocess_queue_size=1)
    results: list[int] = []

    def occupy() -> None:
        with live.http() as http:
            results.append(http.post("/v1/completions", json={"prompt": "a", "max_tokens": 1}).status_code)

    threads = [threading.Thread(target=occupy) for _ in range(2)]  # one runs, one waits
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while live.server_context().preprocess.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        with live.http() as http:
            response = http.post("/v1/chat/completions", json={"messages": HI})
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            assert error_of(response, 503)["code"] == "overloaded"
            assert "--preprocess-workers" in response.json()["error"]["message"]
            assert http.get("/health").status_code == 200
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
    assert results == [200, 200]


def _gaps_of_a_stream(live, out: dict) -> None:
    """Stream a long completion, recording the largest pause between two chunks."""
    with httpx.Client(base_url=live.url, timeout=60) as http:
        with http.stream("POST", "/v1/completions", json={"prompt": "a", "max_tokens": 150,
                                                           "stream": True}) as response:
            last, gaps = time.monotonic(), []
            for _ in response.iter_lines():
                now = time.monotonic()
                gaps.append(now - last)
                last = now
    out["max_gap"] = max(gaps[2:])


def _health_latencies(live, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as http:
        while not stop.is_set():
            start = time.monotonic()
            assert http.get("/health").status_code == 200
            out.append(time.monotonic() - start)
            time.sleep(0.05)


def test_huge_requests_do_not_stall_health_checks_or_streams(start_server):
    """The issue's scenario: a 10 MB prompt and a 50 MB body in flight while a stream
    runs and /health is polled, with the default options. Bodies are encoded up front,
    so the clients' own work (they share this process's GIL with the server) does not
    count. (With a 64 MiB limit the 50 MB body is parsed too: docs/benchmarks.md.)"""
    live = start_server(FakeEngine(token_delay=0.02))
    prompt = json.dumps({"prompt": "hello world " * (10_000_000 // 12)}).encode()
    fifty = [b'{"prompt": "'] + [b"y" * (1024 * 1024)] * 50 + [b'"}']
    stream: dict = {}
    latencies: list[float] = []
    stop = threading.Event()
    streamer = threading.Thread(target=_gaps_of_a_stream, args=(live, stream))
    poller = threading.Thread(target=_health_latencies, args=(live, stop, latencies))
    streamer.start()
    poller.start()
    time.sleep(0.3)
    statuses: list[int] = []
    hostile = [
        threading.Thread(target=lambda: statuses.append(raw_http(
            live.url, "POST", "/v1/completions", chunks=[prompt],
            headers={"Content-Type": "application/json", "Content-Length": str(len(prompt))})[0])),
        threading.Thread(target=lambda: statuses.append(raw_http(
            live.url, "POST", "/v1/completions", chunks=chunked(fifty),
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})[0])),
    ]
    for thread in hostile:
        thread.start()
    for thread in hostile:
        thread.join(60)
    streamer.join(60)
    stop.set()
    poller.join(10)
    assert sorted(statuses) == [400, 413]  # the prompt by the character pre-check, the body by its size
    assert max(latencies) < 0.5, max(latencies)
    assert stream["max_gap"] < 0.5, stream["max_gap"]
