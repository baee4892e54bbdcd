"""Server-sent events, and noticing clients that went away.

A client that disconnects must stop its generation at once (its KV blocks are needed by
others). Streams: ``SSEResponse`` watches for the disconnect while it sends and cancels
the event generator, whose cleanup aborts the engine request. Non-streamed requests:
``until_disconnected`` races the work against the disconnect.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import anyio
from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from fw.server.errors import ApiError, from_exception, log_error

T = TypeVar("T")

DONE = "data: [DONE]\n\n"


class ClientDisconnected(Exception):
    """The client closed the connection before the answer was ready."""


def event(payload: Any, name: str | None = None) -> str:
    """One SSE event; ``payload`` is a pydantic model or JSON-able data. ``name``: the
    ``event:`` line the Responses and Messages APIs put before each payload."""
    data = payload.model_dump_json() if hasattr(payload, "model_dump_json") else json.dumps(payload)
    return f"event: {name}\ndata: {data}\n\n" if name else f"data: {data}\n\n"


def _openai_error_events(error: ApiError) -> list[str]:
    return [error.sse_event(), DONE]


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class SSEResponse(StreamingResponse):
    """A text/event-stream response that always listens for the client's disconnect
    (Starlette's own stops listening under ASGI spec 2.4 servers)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], headers: dict[str, str] | None = None):
        super().__init__(content, headers={"Cache-Control": "no-cache", **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:
            async def stream_then_stop() -> None:
                await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream_then_stop)
            await _wait_for_disconnect(receive)
            group.cancel_scope.cancel()


async def guard_stream(events: AsyncIterator[str], *, log_error_stack: bool,
                       error_events: Callable[[ApiError], list[str]] = _openai_error_events,
                       ) -> AsyncIterator[str]:
    """Once a stream has started its status is sent: a later failure becomes the API's
    error events (by default an error event followed by [DONE]), so the client still
    sees a well-formed stream."""
    try:
        async for item in events:
            yield item
    except Exception as exc:  # noqa: BLE001 - mapped like any other error
        error = from_exception(exc)
        log_error(exc, error, stack=log_error_stack)
        for item in error_events(error):
            yield item


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise
    ClientDisconnected."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request.receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with anyio.CancelScope(shield=True):
        await asyncio.gather(task, return_exceptions=True)
    raise ClientDisconnected()
