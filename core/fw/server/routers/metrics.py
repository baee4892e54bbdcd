"""GET /metrics: Prometheus text format, from this app's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fw.server.context import ServerContext, get_context

router = APIRouter(tags=["Server"])


@router.get("/metrics", response_class=Response, responses={200: {
    "description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(ctx: ServerContext = Depends(get_context)) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
