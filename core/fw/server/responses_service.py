"""What the Responses routes keep between requests: the bounded store and the
responses running in the background.

A background response runs as a task on the server's loop, not tied to the request
that created it; its state is written to the store as it goes (queued, in progress,
then the final response), so ``GET /v1/responses/{id}`` can poll it and
``POST /v1/responses/{id}/cancel`` can stop it (the engine request is aborted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Awaitable, Callable

from fw.errors import InvalidParameterError, NotFoundError
from fw.server.protocol.responses import ResponseObject
from fw.server.response_store import ResponseStore, StoredResponse

logger = logging.getLogger("fw.server")

_FINISHED = ("completed", "incomplete", "cancelled", "failed")


class ResponsesService:
    def __init__(self, store: ResponseStore):
        self.store = store
        self.tasks: dict[str, asyncio.Task] = {}

    def history(self, previous_response_id: str | None) -> list[dict[str, Any]]:
        """The conversation a request continues (empty without previous_response_id)."""
        if previous_response_id is None:
            return []
        entry = self.store.get(previous_response_id)
        if entry is None:
            raise NotFoundError(f"previous response with id {previous_response_id!r} not found (it was never "
                                "stored, or it was deleted, expired or evicted)", param="previous_response_id")
        if entry.response.get("status") not in _FINISHED:
            raise InvalidParameterError("previous_response_id", f"response {previous_response_id!r} has not "
                                                                "finished yet")
        return entry.history

    def keep(self, response: ResponseObject, conversation: list[dict[str, Any]]) -> None:
        """Store a response; ``conversation``: its history and input items, before its output."""
        data = response.model_dump(mode="json")
        self.store.put(response.id, StoredResponse(data, conversation + data["output"]))

    def get(self, response_id: str) -> dict[str, Any]:
        entry = self.store.get(response_id)
        if entry is None:
            raise NotFoundError(f"response with id {response_id!r} not found", param="response_id")
        return entry.response

    def delete(self, response_id: str) -> None:
        task = self.tasks.pop(response_id, None)
        if task is not None:
            task.cancel()
        if not self.store.delete(response_id) and task is None:
            raise NotFoundError(f"response with id {response_id!r} not found", param="response_id")

    def launch(self, response_id: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` (which stores the response as it progresses) in the background."""
        async def run() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - the work stores its own failures; this is a bug
                logger.exception("background response %s failed", response_id)
            finally:
                self.tasks.pop(response_id, None)

        self.tasks[response_id] = asyncio.get_running_loop().create_task(run())

    async def cancel(self, response_id: str) -> dict[str, Any]:
        """Stop a background response; its stored state says ``cancelled``."""
        response = self.get(response_id)
        if not response.get("background"):
            raise InvalidParameterError("response_id", "only responses created with background=true can be "
                                                       "cancelled")
        task = self.tasks.pop(response_id, None)
        if task is None:
            return response  # already finished: cancelling changes nothing
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        entry = self.store.get(response_id)
        cancelled = dict(entry.response if entry else response, status="cancelled")
        self.store.put(response_id, StoredResponse(cancelled, entry.history if entry else []))
        return cancelled

    async def aclose(self) -> None:
        """At shutdown: stop every background response."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
