"""The OpenAPI schema describes what the server really answers, and a bounded
schema-driven fuzz run (schemathesis, fixed seed) against a real engine finds no 5xx and
no answer that breaks the schema."""

from __future__ import annotations

import asyncio

import pytest

from fw.server.routers.lora import RUNTIME_LORA_ENV
from tests.core.server.helpers import serve_config

#: examples per operation and generation mode: ~3-4 minutes on two shared cores
FUZZ_EXAMPLES = 120
FUZZ_SEED = 20250125


def test_the_schema_lists_the_answers_fw_gives(server):
    with server.http() as http:
        schema = http.get("/openapi.json").json()
    paths = schema["paths"]
    assert paths["/health"]["get"]["responses"]["200"].get("content") is None  # an empty body
    assert "application/json" in paths["/health"]["get"]["responses"]["503"]["content"]
    for path in ("/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/messages"):
        answers = paths[path]["post"]["responses"]
        assert set(answers["200"]["content"]) == {"application/json", "text/event-stream"}
        assert {"400", "401", "404", "503"} <= set(answers)
        if path.startswith("/v1/c"):  # OpenAI's routes; Anthropic's have its own error shape
            assert {"413", "500"} <= set(answers)
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    assert not [p for p, ops in paths.items() for op in ops.values() if "422" in op["responses"]]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    with server.http() as http:
        health = http.get("/health")
        assert health.status_code == 200 and health.content == b""
        streamed = http.post("/v1/completions", json={"prompt": "a", "max_tokens": 2, "stream": True})
        assert streamed.headers["content-type"].startswith("text/event-stream")
        refused = http.post("/v1/completions", json={"prompt": "a", "n": 0})
        assert refused.status_code == 400 and refused.headers["content-type"] == "application/json"


@pytest.mark.slow
def test_fuzzing_the_schema_finds_no_server_error_and_no_schema_violation(start_server, tiny_llama, monkeypatch):
    schemathesis = pytest.importorskip("schemathesis")
    import hypothesis
    import hypothesis.errors
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance, response_schema_conformance, status_code_conformance,
    )

    from fw.engine.async_engine import AsyncEngine

    monkeypatch.setenv(RUNTIME_LORA_ENV, "1")
    options = {"model": str(tiny_llama), "dtype": "float32", "max_model_len": 128, "enable_lora": True,
               "enable_tokenizer_info_endpoint": True, "lora_path_roots": [str(tiny_llama)]}
    engine = AsyncEngine.from_config(serve_config(**options).engine_config())
    try:
        live = start_server(engine, **options)
        schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
        checks = [schemathesis.checks.not_a_server_error, response_schema_conformance, content_type_conformance,
                  status_code_conformance]
        failures: dict[str, list[str]] = {}
        for operation in (result.ok() for result in schema.get_all_operations()):
            modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.method.upper() == "POST" else [])
            for mode in modes:
                @hypothesis.seed(FUZZ_SEED)
                @hypothesis.settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                                     suppress_health_check=list(hypothesis.HealthCheck),
                                     phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
                @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                def call(case) -> None:
                    try:
                        case.call_and_validate(base_url=live.url, checks=checks, timeout=60)
                    except BaseException as exc:  # noqa: BLE001 - schemathesis raises exception groups
                        if isinstance(exc, KeyboardInterrupt):
                            raise
                        failures.setdefault(operation.label, []).append(str(exc)[:2000])

                try:
                    call()
                except hypothesis.errors.Unsatisfiable:
                    assert mode == GenerationMode.NEGATIVE, operation.label  # nothing invalid to send
        assert failures == {}, "\n\n".join(f"{label}:\n" + "\n".join(sorted(set(found))[:3])
                                         for label, found in failures.items())
        stats = engine.stats()
        assert stats.num_running == 0 and stats.num_waiting == 0 and stats.kv_cache_usage == 0
        with live.http() as http:
            assert http.get("/health").status_code == 200
    finally:
        asyncio.run(engine.shutdown())
