"""Request/output logging, error stacks and the periodic stats line."""

from __future__ import annotations

import asyncio
import logging

from fw.server.metrics import ServerMetrics
from fw.server.stats_log import log_stats_forever
from tests.core.server.fake_engine import FakeEngine


def messages(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def test_requests_and_outputs_are_logged_truncated(start_server, caplog):
    caplog.set_level(logging.INFO, logger="fw.server.requests")
    live = start_server(enable_log_requests=True, enable_log_outputs=True, max_log_len=3)
    with live.http() as http:
        http.post("/v1/completions", json={"prompt": "abcdefgh", "max_tokens": 5, "request_id": "r1"})
    logged = messages(caplog, "fw.server.requests")
    request_line = next(m for m in logged if m.startswith("request cmpl-r1"))
    ids = live.engine.tokenizer.encode("abcdefgh")[:3]
    assert "prompt 'abc'," in request_line and f"prompt_token_ids {ids}," in request_line
    output_line = next(m for m in logged if m.startswith("output cmpl-r1[0]"))
    assert "(finish_reason length)" in output_line and len(output_line.split("'")[1]) == 3


def test_requests_are_not_logged_by_default(server, caplog):
    caplog.set_level(logging.INFO, logger="fw.server.requests")
    with server.http() as http:
        http.post("/v1/completions", json={"prompt": "abc", "max_tokens": 1})
    assert messages(caplog, "fw.server.requests") == []


def test_outputs_need_request_logging(start_server, caplog):
    caplog.set_level(logging.INFO, logger="fw.server.requests")
    live = start_server(enable_log_outputs=True)
    with live.http() as http:
        http.post("/v1/completions", json={"prompt": "abc", "max_tokens": 1})
    assert messages(caplog, "fw.server.requests") == []


def test_log_error_stack(start_server, caplog):
    caplog.set_level(logging.WARNING, logger="fw.server")
    quiet = start_server()
    with quiet.http() as http:
        http.post("/v1/completions", json={"prompt": "a", "temperature": -1})
    assert not [r for r in caplog.records if r.name == "fw.server"]
    loud = start_server(log_error_stack=True)
    with loud.http() as http:
        http.post("/v1/completions", json={"prompt": "a", "temperature": -1})
    record = next(r for r in caplog.records if r.name == "fw.server")
    assert record.exc_info is not None and "temperature" in record.getMessage()


def test_stats_line_only_while_busy(caplog):
    caplog.set_level(logging.INFO, logger="fw.server.stats")
    engine = FakeEngine()
    metrics = ServerMetrics(engine, "fake-model")

    async def run() -> None:
        task = asyncio.create_task(log_stats_forever(engine, metrics, interval=0.05))
        await asyncio.sleep(0.12)  # idle: nothing logged
        engine.running.add("busy")
        metrics.total_generation_tokens += 10
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(run())
    lines = messages(caplog, "fw.server.stats")
    assert lines and all("running 1" in line and "KV cache usage 5.0%" in line for line in lines)
    assert "prefix cache hit rate 40.0%" in lines[0]
