"""The one place where errors become HTTP answers.

Every error a request can meet (fw's taxonomy in ``fw.errors``, request-body validation,
malformed JSON, unknown routes, a wrong API key, anything unexpected) is turned into a
status and a body here, so a client mistake is never a 500. The body has the shape of
the API that was called: OpenAI's ``{"error": {"message", "type", "param", "code"}}``,
or under ``/v1/messages`` Anthropic's ``{"type": "error", "error": {"type", "message"}}``.
Messages are bounded in size so an error never echoes a huge request back.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from fw.errors import (
    ContextLengthError, EngineDeadError, FwError, InvalidParameterError, ModelNotFoundError, NotFoundError,
    NotSupportedError, OverloadedError,
)
from starlette.types import Scope

logger = logging.getLogger("fw.server")

MAX_MESSAGE_CHARS = 2000
MAX_PARAM_CHARS = 200

Shape = Literal["openai", "anthropic"]

#: Anthropic's error types by status (its SDK picks the exception class by status)
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    503: "overloaded_error", 529: "overloaded_error"}


def route_path(scope: Scope) -> str:
    """The path below --root-path, as the routes see it."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def error_shape(scope: Scope) -> Shape:
    """Whose error body a request gets: Anthropic's for the Messages API, else OpenAI's."""
    path = route_path(scope)
    return "anthropic" if path == "/v1/messages" or path.startswith("/v1/messages/") else "openai"


@dataclass
class ApiError:
    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, shape: Shape = "openai") -> dict[str, Any]:
        if shape == "anthropic":
            kind = _ANTHROPIC_TYPES.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")
            return {"type": "error", "error": {"type": kind, "message": _bound(self.message, MAX_MESSAGE_CHARS)}}
        return {"error": {
            "message": _bound(self.message, MAX_MESSAGE_CHARS),
            "type": self.type,
            "param": _bound(self.param, MAX_PARAM_CHARS) if self.param else None,
            "code": self.code,
        }}

    def response(self, shape: Shape = "openai") -> JSONResponse:
        return JSONResponse(self.body(shape), status_code=self.status, headers=self.headers)

    def sse_event(self) -> str:
        """The error as a server-sent event, for failures after a stream has started."""
        return f"data: {json.dumps(self.body())}\n\n"


def _bound(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + "… (truncated)"


def rename_param(exc: FwError, names: dict[str, str]) -> FwError:
    """``exc`` with its parameter named as the API that was called spells it: the engine
    checks ``max_tokens`` where the chat API took ``max_completion_tokens`` (and the
    Responses API ``max_output_tokens``), the ``prompt`` it rendered from ``messages``.
    The message follows: its leading name, and elsewhere the old name when it is an
    identifier (``prompt`` in prose stays). Unchanged if the parameter is not listed."""
    new = names.get(exc.param or "")
    if new is None:
        return exc
    old, message = exc.param, exc.message
    if message.startswith(f"{old}:"):
        message = new + message[len(old):]
    if "_" in old:
        message = re.sub(rf"\b{re.escape(old)}\b", new, message)
    exc.param, exc.message, exc.args = new, message, (message,)
    return exc


@contextmanager
def api_param_names(names: dict[str, str]) -> Iterator[None]:
    """Errors raised inside name their parameter as this API does (``rename_param``)."""
    try:
        yield
    except FwError as exc:
        rename_param(exc, names)
        raise


def from_fw_error(exc: FwError) -> ApiError:
    """fw's taxonomy, most specific class first."""
    if isinstance(exc, ContextLengthError):
        return ApiError(400, exc.message, param=exc.param, code="context_length_exceeded")
    if isinstance(exc, InvalidParameterError):
        return ApiError(400, exc.message, param=exc.param, code="invalid_value")
    if isinstance(exc, NotSupportedError):
        return ApiError(400, exc.message, param=exc.param, code="not_supported")
    if isinstance(exc, ModelNotFoundError):
        return ApiError(404, exc.message, param=exc.param or "model", code="model_not_found")
    if isinstance(exc, NotFoundError):
        return ApiError(404, exc.message, param=exc.param, code="not_found")
    if isinstance(exc, OverloadedError):
        return ApiError(503, exc.message, type="server_error", code="overloaded",
                        headers={"Retry-After": str(max(1, int(exc.retry_after)))})
    if isinstance(exc, EngineDeadError):
        return ApiError(500, exc.message, type="server_error", code="engine_dead")
    return ApiError(400, exc.message, param=exc.param)


#: pydantic names the member of a union that failed in the location: not a field
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    parts = [p for p in parts if p not in _TYPE_TAGS and "[" not in p]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text


def from_validation_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    if not errors:
        return ApiError(400, "invalid request body")
    first = errors[0]
    kind = first.get("type", "")
    where = _location(tuple(first.get("loc", ())))
    others = {_location(tuple(e.get("loc", ()))) for e in errors} - {where}
    more = f" (and {len(others)} more invalid field{'s' if len(others) > 1 else ''})" if others else ""
    if kind == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return ApiError(400, f"the request body is not valid JSON: {reason}".rstrip(": "), code="invalid_json")
    if kind == "extra_forbidden":
        return ApiError(400, f"unrecognized request argument {where!r}: this server does not "
                             f"support it{more}", param=where, code="unknown_parameter")
    if kind == "missing":
        if not where:
            return ApiError(400, "the request needs a JSON body", code="missing_body")
        return ApiError(400, f"{where}: required{more}", param=where, code="missing_parameter")
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return ApiError(400, f"{where}: {message}{more}" if where else f"{message}{more}",
                    param=where or None, code="invalid_value")


def from_http_exception(exc: HTTPException) -> ApiError:
    code = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return ApiError(exc.status_code, str(exc.detail), code=code,
                    headers=dict(exc.headers or {}))


def from_exception(exc: BaseException) -> ApiError:
    """Any exception as an API error; the unexpected ones are a 500 without details."""
    if isinstance(exc, FwError):
        return from_fw_error(exc)
    if isinstance(exc, RequestValidationError):
        return from_validation_error(exc)
    if isinstance(exc, HTTPException):
        return from_http_exception(exc)
    return ApiError(500, "internal server error; the server log has the details",
                    type="server_error", code="internal_error")


def log_error(exc: BaseException, error: ApiError, *, stack: bool) -> None:
    if error.status >= 500:  # fw's own errors say what happened; anything else needs its stack
        logger.error("%s: %s", error.code, error.message, exc_info=None if isinstance(exc, FwError) else exc)
    elif stack:
        logger.warning("%d %s: %s", error.status, error.code, error.message, exc_info=exc)


def install_error_handlers(app: FastAPI, *, log_error_stack: bool) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        error = from_exception(exc)
        log_error(exc, error, stack=log_error_stack)
        return error.response(error_shape(request.scope))

    for kind in (FwError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(kind, handle)
