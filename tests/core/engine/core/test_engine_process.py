"""`fw serve` runs its engine in an engine-core process (several for data parallelism): the
answers are the in-process engine's, a dead engine core fails its requests cleanly and
stops the server when none is left, SIGTERM drains, and no process outlives the server."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
import time

import httpx
import pytest

from fw import LLM, SamplingParams
from tests.core.engine.core.served import Served

PROMPTS = ["The capital of France is", "Once upon a time", "Numbers: 1 2 3", "Hello, my name is"]


@pytest.fixture(scope="module")
def model(tiny_checkpoint_factory):
    """A tiny Llama with room for streams long enough to be cut (4,000 tokens, some seconds)."""
    return tiny_checkpoint_factory("LlamaForCausalLM", max_position_embeddings=4096)


@pytest.fixture
def serve(tmp_path):
    """``serve(model, *args)`` -> a started ``Served``; stopped (with all it started) after the test."""
    started: list[Served] = []

    def start(model, *args: str, **kwargs) -> Served:
        served = Served(model, *args, log=tmp_path / f"serve-{len(started)}.log", **kwargs)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()
    for served in started:
        assert served.outlived == [], f"processes outlived fw serve: {served.outlived}"


def test_the_engine_core_process_answers_as_the_in_process_engine(model, serve):
    served = serve(model)
    assert list(served.engine_cores()) == ["fw::engine_core"]
    assert served.engine_cores()["fw::engine_core"].pid != served.process.pid
    params = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
    offline = LLM(str(model), dtype="float32").generate(PROMPTS, params, use_tqdm=False)
    for prompt, expected in zip(PROMPTS, offline):
        answer = served.complete(prompt, max_tokens=8, temperature=0.0, ignore_eos=True)
        assert answer["choices"][0]["text"] == expected.outputs[0].text
    refused = served.complete("hi", max_tokens=10**6)  # the engine's admission, across the boundary
    assert refused["status"] == 400 and refused["error"]["param"] == "max_tokens"


def test_killing_the_only_engine_core_ends_streams_and_stops_the_server(model, serve):
    served = serve(model)
    core = served.engine_cores()["fw::engine_core"]
    streaming = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stream = pool.submit(served.stream_events, "Once upon a time", streaming, max_tokens=4000, ignore_eos=True)
        assert streaming.wait(60)
        os.kill(core.pid, signal.SIGKILL)
        events = stream.result(timeout=30)
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "engine_dead"
    assert served.wait_exit(15) not in (None, 0)  # a supervisor restarts it
    assert "no engine core is left" in served.log()


def test_sigterm_while_starting_leaves_no_process_behind(model, serve):
    served = serve(model, wait=False)
    deadline = time.monotonic() + 120
    while not served.engine_cores() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served.engine_cores(), served.log()
    os.kill(served.process.pid, signal.SIGTERM)
    served.wait_exit(30)
    deadline = time.monotonic() + 60  # an engine core still loading notices once it is ready
    while served.leftovers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert served.leftovers() == []


def test_sigterm_lets_streams_end_cleanly_and_exits_zero(tiny_checkpoint_factory, serve):
    # Streams long enough to outlast the drain on a quiet machine too (30,000 tokens).
    model = tiny_checkpoint_factory("LlamaForCausalLM", max_position_embeddings=32768)
    served = serve(model, "--shutdown-timeout", "8",  # longer than uvicorn's own 5 s: it must not cut a stream
                   "--kv-cache-memory-bytes", "128M")
    started = [threading.Event() for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        streams = [pool.submit(served.stream_events, f"{p} {i}", started[i], max_tokens=20 if i % 2 else 30000,
                               ignore_eos=True) for i, p in enumerate(PROMPTS * 2)]
        assert all(event.wait(60) for event in started)
        os.kill(served.process.pid, signal.SIGTERM)
        results = [s.result(timeout=60) for s in streams]
    for events in results:
        assert events[-1] == "[DONE]"
        reasons = [c["finish_reason"] for e in events[:-1] if "choices" in e for c in e["choices"]]
        if "abort" in reasons:  # cut at the deadline: an error event says why
            assert events[-2]["error"]["code"] == "overloaded" and "shutting down" in events[-2]["error"]["message"]
        else:
            assert reasons[-1] == "length"
    assert sum("abort" in str(events) for events in results) == 4  # the long ones; the short ones finished
    assert served.wait_exit(30) == 0
    assert "died" not in served.log()  # the engine core stopped with the server: no death to report


@pytest.mark.parametrize("level", [1, 2])
def test_the_engine_core_sleeps_and_wakes_with_the_same_answers(model, serve, level):
    served = serve(model, "--enable-sleep-mode")
    before = served.complete("Hello there", max_tokens=8, temperature=0.0, ignore_eos=True)["choices"][0]["text"]
    assert httpx.post(f"{served.url}/sleep", params={"level": level}, timeout=60).status_code == 200
    refused = served.complete("Hello there", max_tokens=8)
    assert refused["status"] == 503 and "wake_up" in refused["error"]["message"]
    assert httpx.post(f"{served.url}/wake_up", timeout=120).status_code == 200
    after = served.complete("Hello there", max_tokens=8, temperature=0.0, ignore_eos=True)
    assert after["choices"][0]["text"] == before


def _both_ranks_serve(served: Served, count: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(lambda i: served.complete(f"{PROMPTS[i % 4]} {i}", max_tokens=6, ignore_eos=True),
                                range(count)))
    assert all(a["status"] == 200 and a["usage"]["completion_tokens"] == 6 for a in answers)


def test_data_parallel_ranks_share_the_load_and_survive_one_death(model, serve):
    served = serve(model, "--data-parallel-size", "2", "--data-parallel-routing", "queue")
    cores = served.engine_cores()
    assert sorted(cores) == ["fw::engine_core", "fw::engine_core_dp1"]
    _both_ranks_serve(served, 32)
    assert served.metric("fw:prefix_cache_queries_total", engine="0") > 0
    assert served.metric("fw:prefix_cache_queries_total", engine="1") > 0
    os.kill(cores["fw::engine_core_dp1"].pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while served.metric("fw:engine_alive", engine="1") != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served.metric("fw:engine_alive", engine="1") == 0 and served.metric("fw:engine_alive", engine="0") == 1
    _both_ranks_serve(served, 16)  # all on the rank left
    assert httpx.get(f"{served.url}/health").status_code == 200
    assert "engine core 1" in served.log() and "serving on 1 remaining" in served.log()


@pytest.mark.slow
def test_data_parallel_ranks_as_ray_actors(model, serve):
    pytest.importorskip("ray")
    served = serve(model, "--data-parallel-size", "2", "--data-parallel-backend", "ray",
                   "--data-parallel-routing", "queue", env={"RAY_ADDRESS": "", "RAY_DISABLE_USAGE_STATS": "1"})
    _both_ranks_serve(served, 32)
    assert served.metric("fw:prefix_cache_queries_total", engine="0") > 0
    assert served.metric("fw:prefix_cache_queries_total", engine="1") > 0


def test_api_servers_share_the_port_and_every_engine_core(model, serve):
    served = serve(model, "--api-server-count", "2", "--data-parallel-size", "2")
    assert sorted(served.titled("fw::api_server")) == ["fw::api_server_0", "fw::api_server_1"]
    _both_ranks_serve(served, 32)
    os.kill(served.process.pid, signal.SIGTERM)
    assert served.wait_exit(60) == 0, served.log()


def test_sigterm_while_api_servers_start_exits_zero(model, serve):
    served = serve(model, "--api-server-count", "2", "--data-parallel-size", "2", wait=False)
    deadline = time.monotonic() + 120
    while "fw::api_server_1" not in served.titled("fw::api_server") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(served.process.pid, signal.SIGTERM)  # before they serve: nothing to drain, no failure
    assert served.wait_exit(60) == 0, served.log()


@pytest.mark.slow
def test_a_headless_node_joins_the_head_node(model, serve, tmp_path):
    from tests.core.engine.core.served import free_port

    port = str(free_port())
    multi_node = ["--data-parallel-size", "2", "--data-parallel-size-local", "1", "--data-parallel-address",
                  "127.0.0.1", "--data-parallel-rpc-port", port, "--data-parallel-routing", "queue"]
    headless = serve(model, "--headless", "--data-parallel-start-rank", "1", *multi_node, wait=False)
    head = serve(model, *multi_node)
    assert list(headless.engine_cores()) == ["fw::engine_core_dp1"] and list(head.engine_cores()) == ["fw::engine_core"]
    _both_ranks_serve(head, 32)
    assert head.metric("fw:prefix_cache_queries_total", engine="1") > 0
    os.kill(headless.process.pid, signal.SIGTERM)
    assert headless.wait_exit(60) == 0
