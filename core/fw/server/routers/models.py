"""GET /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from fw.server.context import ServerContext, get_context
from fw.server.protocol.models import ModelCard, ModelList

router = APIRouter(tags=["OpenAI"])


@router.get("/v1/models", response_model=ModelList)
async def list_models(ctx: ServerContext = Depends(get_context)) -> ModelList:
    """The served model, once per served name."""
    info = ctx.model_info
    return ModelList(data=[
        ModelCard(id=name, root=info.path, max_model_len=info.max_model_len) for name in ctx.served_names
    ])
