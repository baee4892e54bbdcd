"""POST /sleep, POST /wake_up, GET /is_sleeping (vLLM's routes; --enable-sleep-mode).

``/sleep?level=1`` frees the KV cache, ``level=2`` the weights too; the answer comes once
the requests in flight have finished and the memory is free. Until ``/wake_up``, new
requests get 503. With --api-key, /sleep and /wake_up need the key like /v1/*.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from fw.errors import NotSupportedError
from fw.server.context import ServerContext, get_context
from fw.server.routers import ERROR_RESPONSES

router = APIRouter(tags=["Server"])


@router.post("/sleep", responses=ERROR_RESPONSES)
async def sleep(level: int = Query(1, description="1: free the KV cache; 2: the weights too."),
                ctx: ServerContext = Depends(get_context)) -> Response:
    await ctx.engine.sleep(level)
    return Response(status_code=200)


@router.post("/wake_up", responses=ERROR_RESPONSES)
async def wake_up(tags: list[str] | None = Query(None, description="Not supported: fw wakes everything at once."),
                  ctx: ServerContext = Depends(get_context)) -> Response:
    if tags:
        raise NotSupportedError("fw wakes the weights and the KV cache together; omit tags", param="tags")
    await ctx.engine.wake_up()
    return Response(status_code=200)


@router.get("/is_sleeping")
async def is_sleeping(ctx: ServerContext = Depends(get_context)) -> dict[str, bool]:
    return {"is_sleeping": ctx.engine.is_sleeping()}
