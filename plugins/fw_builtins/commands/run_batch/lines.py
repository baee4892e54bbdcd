"""One line of a batch file: checking it is a request, and the record it turns into.

The shapes are OpenAI's batch format. A request line is ``{"custom_id", "method", "url",
"body"}``; a result line is ``{"id", "custom_id", "response", "error"}``. A line the
server answered keeps the server's answer in ``response`` (``status_code``,
``request_id``, ``body``), error bodies included, so a 404 for an unknown model reads as
it would over HTTP. ``error`` (``{"code", "message"}``) is set on every line that did not
succeed, so failures are found by one field; a line that never reached the server (not
JSON, a missing field, an unsupported url) has ``response: null``. Error codes are the
server's own (``invalid_json``, ``missing_parameter``, ``invalid_value``,
``not_supported``, ``model_not_found``, ...).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

#: the endpoints a batch line may name (vLLM's run-batch takes the same)
SUPPORTED_URLS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/score", "/v1/rerank")


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    url: str
    body: dict[str, Any]


class BadLine(Exception):
    """A line that is not a request fw can run; it becomes an error record."""

    def __init__(self, code: str, message: str, custom_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.custom_id = custom_id


def parse_line(raw: bytes) -> BatchRequest:
    """The request on one line, or ``BadLine`` saying what is wrong with it."""
    try:
        data = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        raise BadLine("invalid_json", f"the line is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadLine("invalid_json", "the line must be a JSON object")
    custom_id = data.get("custom_id")
    known_id = custom_id if isinstance(custom_id, str) else None
    for field in ("custom_id", "method", "url", "body"):
        if field not in data:
            raise BadLine("missing_parameter", f"{field}: required", known_id)
    if not isinstance(custom_id, str):
        raise BadLine("invalid_value", "custom_id: must be a string")
    method, url, body = data["method"], data["url"], data["body"]
    if not isinstance(method, str) or method.upper() != "POST":
        raise BadLine("not_supported", f"method {method!r} is not supported; batch requests use POST",
                      custom_id)
    if url not in SUPPORTED_URLS:
        raise BadLine("not_supported", f"url {url!r} is not supported; use "
                      f"{', '.join(SUPPORTED_URLS[:-1])} or {SUPPORTED_URLS[-1]}", custom_id)
    if not isinstance(body, dict):
        raise BadLine("invalid_value", "body: must be a JSON object", custom_id)
    if body.get("stream"):
        raise BadLine("not_supported", "body.stream: a batch request cannot be streamed", custom_id)
    return BatchRequest(custom_id, url, body)


def _record(custom_id: str | None, response: dict[str, Any] | None,
            error: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": custom_id,
            "response": response, "error": error}


def failed(custom_id: str | None, code: str, message: str) -> dict[str, Any]:
    """The record of a line that never got an answer from the server."""
    return _record(custom_id, None, {"code": code, "message": message})


def answered(custom_id: str, status_code: int, request_id: str, body: Any) -> dict[str, Any]:
    """The record of a line the server answered, successfully or not."""
    error = None
    if status_code >= 400:
        detail = body.get("error") if isinstance(body, dict) else None
        detail = detail if isinstance(detail, dict) else {}
        error = {"code": detail.get("code") or detail.get("type") or f"http_{status_code}",
                 "message": detail.get("message") or f"the server answered with status {status_code}"}
    response = {"status_code": status_code, "request_id": request_id, "body": body}
    return _record(custom_id, response, error)
