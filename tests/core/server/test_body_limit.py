"""--max-request-body-bytes: a body past the limit is a 413 in the API's error shape,
refused before it is read whole, whether it announces its length or streams in chunks."""

from __future__ import annotations

import json

from tests.core.server.helpers import chunked, raw_http

LIMIT = 1024 * 1024


def test_a_content_length_past_the_limit_is_refused_before_the_body(start_server):
    live = start_server(max_request_body_bytes=LIMIT)
    status, body, sent = raw_http(live.url, "POST", "/v1/completions", headers={
        "Content-Type": "application/json", "Content-Length": str(50 * 1000 * 1000)}, chunks=[b'{"prompt": "'])
    assert status == 413 and sent <= len(b'{"prompt": "')
    error = json.loads(body)["error"]
    assert error["code"] == "request_too_large" and "--max-request-body-bytes" in error["message"]
    assert str(LIMIT) in error["message"]
    assert live.engine.requests == []


def test_a_chunked_body_is_counted_as_it_arrives(start_server):
    live = start_server(max_request_body_bytes=LIMIT)
    pieces = [b'{"prompt": "'] + [b"x" * 65536] * 800  # 50 MiB if it were all sent
    status, body, sent = raw_http(live.url, "POST", "/v1/completions", headers={
        "Content-Type": "application/json", "Transfer-Encoding": "chunked"}, chunks=chunked(pieces))
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "request_too_large"
    assert sent < 16 * LIMIT  # it stopped reading long before the end
    with live.http() as http:
        assert http.get("/health").status_code == 200


def test_bodies_under_the_limit_are_served(start_server):
    live = start_server(max_request_body_bytes=LIMIT)
    prompt = [[5] * 100] * 1000  # ~0.3 MB of token ids: parsed and validated on the pool
    with live.http() as http:
        response = http.post("/v1/completions", json={"prompt": prompt[:100], "max_tokens": 1})
        assert response.status_code == 200, response.text
        assert len(response.json()["choices"]) == 100
        response = http.post("/v1/completions", json={"prompt": prompt, "max_tokens": 1})
        assert response.status_code == 400 and response.json()["error"]["param"] == "prompt"  # 1000 > --max-num-seqs


def test_the_default_limit_is_16_mib(server):
    status, body, _ = raw_http(server.url, "POST", "/v1/completions", headers={
        "Content-Type": "application/json", "Content-Length": str(16 * LIMIT + 1)})
    assert status == 413 and str(16 * LIMIT) in json.loads(body)["error"]["message"]


def test_the_messages_api_gets_anthropic_s_shape(start_server):
    live = start_server(max_request_body_bytes=LIMIT)
    status, body, _ = raw_http(live.url, "POST", "/v1/messages", headers={
        "Content-Type": "application/json", "Content-Length": str(2 * LIMIT)})
    assert status == 413
    assert json.loads(body) == {"type": "error", "error": {"type": "request_too_large", "message": json.loads(
        body)["error"]["message"]}} and "--max-request-body-bytes" in json.loads(body)["error"]["message"]
