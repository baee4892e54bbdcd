"""GET /health and /version: for load balancers and humans; never behind the API key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from fw.server.context import ServerContext, get_context
from fw.server.protocol.models import VersionResponse
from fw.server.routers import json_errors
from fw.version import __version__

router = APIRouter(tags=["Server"])


@router.get("/health", response_class=Response, responses={
    200: {"description": "The engine loop runs (an empty body, as vLLM's)."},
    **json_errors(500)})
async def health(ctx: ServerContext = Depends(get_context)) -> Response:
    """200 while the engine loop runs; 500 (code engine_dead) once it has died."""
    ctx.engine.check_health()
    return Response(status_code=200)


@router.get("/version", response_model=VersionResponse)
async def version() -> VersionResponse:
    return VersionResponse(version=__version__)
