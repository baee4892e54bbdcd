"""``--enable-server-load-tracking``: how many generation requests the server is
handling, at ``GET /load`` as ``{"server_load": N}`` (vLLM's route and field), so a load
balancer can pick the least busy replica.

A request counts from its arrival until its response (a whole stream) has been sent.
The count lives in ``app.state.server_load_metrics``, where vLLM keeps it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from fw.server.auth import route_path

#: the APIs that occupy the engine (vLLM's load-aware routes), present now or later
TRACKED_PATHS = frozenset({
    "/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages", "/v1/embeddings", "/pooling",
    "/classify", "/score", "/v1/score", "/rerank", "/v1/rerank", "/v2/rerank",
})

router = APIRouter(tags=["Server"])


@router.get("/load")
async def server_load(request: Request) -> dict[str, int]:
    """The number of generation requests in progress."""
    return {"server_load": request.app.state.server_load_metrics}


class LoadTrackingMiddleware:
    def __init__(self, app: Any, state: Any):
        self.app = app
        self.state = state
        self.state.server_load_metrics = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or route_path(scope) not in TRACKED_PATHS:
            return await self.app(scope, receive, send)
        self.state.server_load_metrics += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.server_load_metrics -= 1
