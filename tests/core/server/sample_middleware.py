"""Middleware that tests load by import path (--middleware) or through the plugin hook."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders


class TagClass:
    """An ASGI middleware class: adds X-Tag-Class to every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def tagged(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Tag-Class"] = "yes"
            await send(message)

        await self.app(scope, receive, tagged)


async def tag_function(request, call_next):
    """An HTTP middleware function: adds X-Tag-Function."""
    response = await call_next(request)
    response.headers["X-Tag-Function"] = "yes"
    return response


not_middleware = 42
