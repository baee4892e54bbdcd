"""--max-request-body-bytes: a request body larger than the limit is refused with 413
before it is read whole.

A Content-Length above the limit is refused at once, before the route runs. A body sent
without one (chunked) is counted as its chunks arrive, and reading stops at the first
chunk past the limit. Either way at most the limit is held in memory and parsed (a
50 MB body used to be read and parsed in full).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fw.server.errors import error_shape, from_http_exception


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body passes the limit; FastAPI lets an
    HTTPException from body reading through, so the error handlers answer it."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than this server accepts ({limit} bytes; "
                              "--max-request-body-bytes)")


def _content_length(scope: Scope) -> int | None:
    value = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await from_http_exception(BodyTooLarge(self.max_bytes)).response(error_shape(scope))(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, send_tracked)
        except BodyTooLarge as exc:  # read outside a route (a middleware): answered here
            if not started:
                await from_http_exception(exc).response(error_shape(scope))(scope, receive, send)
