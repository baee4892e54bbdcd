"""Logging and observability options: --disable-log-requests, --log-config-file,
--enable-server-load-tracking (GET /load), --otlp-traces-endpoint and
--collect-detailed-traces (spans caught by an OTLP/HTTP collector in this process)."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fw.config import ConfigError
from tests.core.server.conftest import LiveServer
from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import serve_config

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_no_disable_log_requests_turns_request_logging_on(start_server, caplog):
    caplog.set_level(logging.INFO, logger="fw.server.requests")
    live = start_server(disable_log_requests=False)
    with live.http() as http:
        http.post("/v1/completions", json={"prompt": "abc", "max_tokens": 1, "request_id": "r9"})
    assert any(r.getMessage().startswith("request cmpl-r9") for r in caplog.records)
    with pytest.raises(ConfigError, match="contradict"):
        serve_config(enable_log_requests=True, disable_log_requests=True)


@pytest.fixture
def restore_logging():
    loggers = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
                      logging.getLogger(name).propagate) for name in ("fw", "fw.server.requests")}
    yield
    for name, (handlers, level, propagate) in loggers.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)
                handler.close()
        logger.setLevel(level)
        logger.propagate = propagate


def test_log_config_file_configures_fw_and_uvicorn(start_server, tmp_path, restore_logging):
    log_file = tmp_path / "requests.log"
    config = {"version": 1, "disable_existing_loggers": False,
              "formatters": {"plain": {"format": "CUSTOM %(name)s %(message)s"}},
              "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "plain"}},
              "loggers": {"fw.server.requests": {"handlers": ["file"], "level": "INFO"}}}
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    live = start_server(log_config_file=str(path), enable_log_requests=True)
    with live.http() as http:
        http.post("/v1/completions", json={"prompt": "abc", "max_tokens": 1, "request_id": "logged"})
    assert "CUSTOM fw.server.requests request cmpl-logged" in log_file.read_text()


def test_a_bad_log_config_file_stops_the_server_before_it_loads(tmp_path):
    from fw.server.launch import check_options

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="--log-config-file: .* is not valid JSON"):
        check_options(serve_config(log_config_file=str(bad)))
    with pytest.raises(ValueError, match="cannot read"):
        check_options(serve_config(log_config_file=str(tmp_path / "missing.json")))


def test_load_counts_requests_in_progress(start_server):
    live = start_server(FakeEngine(token_delay=0.05), enable_server_load_tracking=True)
    with live.http() as http:
        assert http.get("/load").json() == {"server_load": 0}
        done = threading.Event()

        def stream():
            with live.http() as other:
                other.post("/v1/completions", json={"prompt": "a", "max_tokens": 20, "stream": True})
            done.set()

        threading.Thread(target=stream, daemon=True).start()
        loads = []
        while not done.is_set():
            loads.append(http.get("/load").json()["server_load"])
            time.sleep(0.05)
        assert 1 in loads and max(loads) == 1
        assert http.get("/load").json() == {"server_load": 0}


def test_load_is_only_served_when_tracked(server):
    with server.http() as http:
        assert http.get("/load").status_code == 404


class Collector:
    """An OTLP/HTTP trace collector on a loopback port, in this process."""

    def __init__(self):
        self.requests: list[ExportTraceServiceRequest] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                collector.requests.append((self.path, message))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        return [span for _, request in self.requests for resource in request.resource_spans
                for scope in resource.scope_spans for span in scope.spans]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    running = Collector()
    yield running
    running.close()


def attributes(span):
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_spans_reach_an_otlp_collector(collector, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "fw-test")
    live = LiveServer(FakeEngine(), serve_config(otlp_traces_endpoint=collector.url)).start()
    try:
        with live.http() as http:
            response = http.post("/v1/completions", headers={"traceparent": TRACEPARENT},
                                 json={"prompt": "hello", "max_tokens": 5, "temperature": 0.5, "request_id": "t1"})
        assert response.status_code == 200
    finally:
        live.stop()  # shutting down flushes the batched spans
    (span,) = collector.spans()
    assert collector.requests[0][0] == "/v1/traces"
    assert span.name == "llm_request" and span.kind == span.SPAN_KIND_SERVER
    assert span.trace_id.hex() == TRACEPARENT.split("-")[1] and span.parent_span_id.hex() == TRACEPARENT.split("-")[2]
    found = attributes(span)
    assert found["gen_ai.request.id"] == "cmpl-t1" and found["gen_ai.response.model"] == "fake-model"
    assert found["gen_ai.request.temperature"] == 0.5 and found["gen_ai.request.max_tokens"] == 5
    assert found["gen_ai.usage.completion_tokens"] == 5 and found["gen_ai.usage.prompt_tokens"] == 6
    assert found["gen_ai.latency.e2e"] > 0 and span.end_time_unix_nano > span.start_time_unix_nano
    service = {kv.key: kv.value.string_value for kv in collector.requests[0][1].resource_spans[0].resource.attributes}
    assert service["service.name"] == "fw-test"


def test_detailed_traces_carry_the_model_time(collector, tiny_llama):
    from fw.engine.async_engine import AsyncEngine

    config = serve_config(model=str(tiny_llama), dtype="float32", otlp_traces_endpoint=collector.url,
                          collect_detailed_traces="all", kv_cache_memory_bytes=2**22)
    engine = AsyncEngine.from_config(config.engine_config())
    live = LiveServer(engine, config).start()
    try:
        with live.http() as http:
            assert http.post("/v1/completions", json={"prompt": "hello", "max_tokens": 4}).status_code == 200
    finally:
        live.stop()
        import asyncio

        asyncio.run(engine.shutdown())
    found = attributes(collector.spans()[0])
    forward, execute = found["gen_ai.latency.time_in_model_forward"], found["gen_ai.latency.time_in_model_execute"]
    assert 0 < forward <= execute <= found["gen_ai.latency.e2e"]
    assert found["gen_ai.latency.time_to_first_token"] > 0 and found["gen_ai.latency.time_in_queue"] >= 0
