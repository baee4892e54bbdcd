"""GET /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from fw.server.context import ServerContext, get_context
from fw.server.protocol.models import ModelCard, ModelList
from fw.server.routers import ERROR_RESPONSES

router = APIRouter(tags=["OpenAI"])


@router.get("/v1/models", response_model=ModelList, responses={c: ERROR_RESPONSES[c] for c in (401, 500)})
async def list_models(ctx: ServerContext = Depends(get_context)) -> ModelList:
    """The served model once per served name, then every LoRA adapter with its base model
    as ``parent``. ``root`` is the model's name (its folder with --expose-model-paths: a
    client has no use for the server's folder layout). An adapter named like a served
    name takes that name over (requests for it get the adapter), so the name is listed
    once, as the adapter."""
    info = ctx.model_info
    paths = ctx.config.frontend.expose_model_paths
    loras = ctx.engine.list_loras()
    taken = {lora.lora_name for lora in loras}
    base = [ModelCard(id=name, root=info.path if paths else info.name, max_model_len=info.max_model_len)
            for name in ctx.served_names if name not in taken]
    adapters = [ModelCard(id=lora.lora_name, root=lora.lora_path if paths else lora.lora_name,
                          parent=lora.base_model_name or info.name, max_model_len=info.max_model_len)
                for lora in loras]
    return ModelList(data=base + adapters)
