"""Request-header middleware: X-Request-Id echoing and the header-count limit."""

from __future__ import annotations

import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fw.server.errors import ApiError


class RequestIdMiddleware:
    """--enable-request-id-headers: every response carries X-Request-Id, the client's own
    if it sent one. The id is also the request's id in the engine and the logs."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        request_id = given.decode("latin-1") if given else uuid.uuid4().hex
        scope["fw.request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class HeaderLimitMiddleware:
    """--h11-max-header-count: requests with more headers get 431. (uvicorn's h11 parser
    bounds the headers' size, --h11-max-incomplete-event-size, but not their number.)"""

    def __init__(self, app: ASGIApp, max_headers: int):
        self.app = app
        self.max_headers = max_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope.get("headers", [])) > self.max_headers:
            error = ApiError(431, f"too many request headers (more than {self.max_headers})",
                             code="too_many_headers")
            await error.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)
