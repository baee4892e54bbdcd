"""GET /health and /version: for load balancers and humans; never behind the API key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from fw.errors import EngineDeadError
from fw.server.context import ServerContext, get_context
from fw.server.errors import from_fw_error
from fw.server.protocol.models import VersionResponse
from fw.server.routers import json_errors
from fw.version import __version__

router = APIRouter(tags=["Server"])


@router.get("/health", response_class=Response, responses={
    200: {"description": "An engine serves (an empty body, as vLLM's)."},
    **json_errors(503, description="No engine serves (code engine_dead).")})
async def health(ctx: ServerContext = Depends(get_context)) -> Response:
    """200 while an engine serves; 503 (code engine_dead) once none does, so a load
    balancer takes the server out while its supervisor restarts it."""
    try:
        ctx.engine.check_health()
    except EngineDeadError as exc:
        error = from_fw_error(exc)
        error.status = 503
        return error.response()
    return Response(status_code=200)


@router.get("/version", response_model=VersionResponse)
async def version() -> VersionResponse:
    return VersionResponse(version=__version__)
