"""Adds ``x-fw-example`` to every HTTP response of ``fw serve``, through the
``fw_asgi_middleware`` hook.

It is plain ASGI (no framework import): the wrapper edits the response-start message and
passes the body through, so streamed (SSE) responses keep streaming.
"""

from __future__ import annotations

from fw import hookimpl

HEADER_NAME = b"x-fw-example"
HEADER_VALUE = b"hello from fw-plugin-example-middleware"


class AddHeader:
    """ASGI middleware adding one header to HTTP responses; other scopes pass through."""

    def __init__(self, app, name: bytes = HEADER_NAME, value: bytes = HEADER_VALUE):
        self.app = app
        self.header = (name, value)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_header)


@hookimpl
def fw_asgi_middleware(app, config):
    return AddHeader(app)
