"""The one place where errors become HTTP answers.

Every error a request can meet (fw's taxonomy in ``fw.errors``, request-body validation,
malformed JSON, unknown routes, a wrong API key, anything unexpected) is turned into a
status and a body here, so a client mistake is never a 500. The body has the shape of
the API that was called: OpenAI's ``{"error": {"message", "type", "param", "code"}}``,
or under ``/v1/messages`` Anthropic's ``{"type": "error", "error": {"type", "message"}}``.
Messages are bounded in size so an error never echoes a huge request back.

An exception nobody expected is answered by ``InternalErrorMiddleware``: a 500 whose
message carries the request id, and one log line with the same id (the stack trace too
under --log-error-stack). Starlette's own last-resort handler would re-raise it to
uvicorn, which logs a second traceback.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fw.errors import (
    ContextLengthError, EngineDeadError, FwError, InvalidParameterError, ModelNotFoundError, NotFoundError,
    NotSupportedError, OverloadedError,
)

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


#: the id of the HTTP request being served (set by InternalErrorMiddleware), for 500s
current_request_id: ContextVar[str | None] = ContextVar("fw_request_id", default=None)


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
    code = {401: "invalid_api_key", 404: "not_found", 405: "method_not_allowed",
            413: "request_too_large"}.get(exc.status_code)
    return ApiError(exc.status_code, str(exc.detail), code=code,
                    headers=dict(exc.headers or {}))


def from_exception(exc: BaseException) -> ApiError:
    """Any exception as an API error; the unexpected ones are a 500 without details
    beyond the request id to look for in the log."""
    if isinstance(exc, FwError):
        error = from_fw_error(exc)
    elif isinstance(exc, RequestValidationError):
        error = from_validation_error(exc)
    elif isinstance(exc, HTTPException):
        error = from_http_exception(exc)
    else:
        error = ApiError(500, "internal server error; the server log has the details",
                         type="server_error", code="internal_error")
    request_id = current_request_id.get()
    if error.status >= 500 and request_id:
        error.message = f"{error.message} (request id {request_id})"
        error.headers.setdefault("X-Request-Id", request_id)
    return error


def _origin(exc: BaseException) -> str:
    """Where ``exc`` was raised: the innermost frame, as ``file:line in function``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown location"
    last = frames[-1]
    return f"{last.filename}:{last.lineno} in {last.name}"


def log_error(exc: BaseException, error: ApiError, *, stack: bool) -> None:
    """One log record per failed request: for a 5xx one line naming the request id, the
    exception and where it was raised (its stack trace too when ``stack``)."""
    if error.status >= 500:
        logger.error("%d %s (request id %s): %s: %s, at %s", error.status, error.code, current_request_id.get(),
                     type(exc).__name__, exc, _origin(exc), exc_info=exc if stack else None)
    elif stack:
        logger.warning("%d %s: %s", error.status, error.code, error.message, exc_info=exc)


def install_error_handlers(app: FastAPI, *, log_error_stack: bool) -> None:
    """Handlers for fw's taxonomy and the framework's errors. Anything else reaches
    ``InternalErrorMiddleware`` (which build_app adds innermost)."""
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        error = from_exception(exc)
        log_error(exc, error, stack=log_error_stack)
        return error.response(error_shape(request.scope))

    for kind in (FwError, RequestValidationError, HTTPException):
        app.add_exception_handler(kind, handle)


class InternalErrorMiddleware:
    """Gives every HTTP request an id (the X-Request-Id middleware's, the client's header,
    or a fresh one) and turns an exception that escaped every handler into a 500 with
    that id and a single log line. It does not re-raise: the server logs nothing more."""

    def __init__(self, app: ASGIApp, *, log_error_stack: bool = False):
        self.app = app
        self.log_error_stack = log_error_stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        request_id = scope.get("fw.request_id") or (given.decode("latin-1") if given else uuid.uuid4().hex)
        scope["fw.request_id"] = request_id
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:  # noqa: BLE001 - the last resort: answered and logged once
            error = from_exception(exc)
            log_error(exc, error, stack=self.log_error_stack)
            if not started:
                await error.response(error_shape(scope))(scope, receive, send)
        finally:
            current_request_id.reset(token)
