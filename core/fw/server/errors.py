"""The one place where errors become HTTP answers.

Every error a request can meet (fw's taxonomy in ``fw.errors``, request-body validation,
malformed JSON, unknown routes, a wrong API key, anything unexpected) is turned into a
status and OpenAI's body ``{"error": {"message", "type", "param", "code"}}`` here, so
clients see one shape and a client mistake is never a 500. Messages are bounded in size
so an error never echoes a huge request back.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from fw.errors import (
    ContextLengthError, EngineDeadError, FwError, InvalidParameterError, ModelNotFoundError,
    NotSupportedError, OverloadedError,
)

logger = logging.getLogger("fw.server")

MAX_MESSAGE_CHARS = 2000
MAX_PARAM_CHARS = 200


@dataclass
class ApiError:
    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {
            "message": _bound(self.message, MAX_MESSAGE_CHARS),
            "type": self.type,
            "param": _bound(self.param, MAX_PARAM_CHARS) if self.param else None,
            "code": self.code,
        }}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)

    def sse_event(self) -> str:
        """The error as a server-sent event, for failures after a stream has started."""
        return f"data: {json.dumps(self.body())}\n\n"


def _bound(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 15] + "… (truncated)"


def rename_param(exc: FwError, names: dict[str, str]) -> None:
    """Name the parameter as the API that was called spells it: the engine checks
    ``max_tokens`` where the chat API took ``max_completion_tokens``, the ``prompt`` it
    rendered from ``messages``."""
    new = names.get(exc.param)
    if new is None:
        return
    if exc.message.startswith(exc.param):
        exc.message = new + exc.message[len(exc.param):]
        exc.args = (exc.message,)
    exc.param = new


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
        return error.response()

    for kind in (FwError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(kind, handle)
