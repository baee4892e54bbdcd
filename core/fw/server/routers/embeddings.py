"""POST /v1/embeddings, POST /pooling and POST /classify (the pooling runner's outputs)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fw.errors import NotSupportedError
from fw.pooling.params import PoolingParams
from fw.server.context import ServedModel, ServerContext, base_request_id, get_context
from fw.server.json_body import StrictJSONRoute
from fw.server.pooling import encode_array, require_task, run_pooling, usage
from fw.server.pooling_inputs import input_prompts
from fw.server.protocol.pooling import (
    ClassificationRequest,
    ClassificationResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    PoolingFields,
    PoolingRequest,
    PoolingResponse,
)
from fw.server.routers import ERROR_RESPONSES

router = APIRouter(tags=["Pooling"], route_class=StrictJSONRoute)


def json_response(body: dict[str, Any]) -> Response:
    """The body as JSON, encoded by msgspec (a batch of embeddings is thousands of floats)."""
    return Response(msgspec.json.encode(body), media_type="application/json")


def served_model(ctx: ServerContext, body: PoolingFields, task: str, endpoint: str) -> ServedModel:
    served = ctx.resolve_model(body.model)
    if served.lora is not None:
        raise NotSupportedError(f"{endpoint}: LoRA adapters apply to text generation; ask for the base model",
                                param="model")
    require_task(ctx, task, endpoint)
    return served


async def pool_inputs(ctx: ServerContext, request: Request, body: PoolingFields, params: PoolingParams,
                      prefix: str) -> tuple[str, list]:
    prompts = await input_prompts(ctx, body.input, add_special_tokens=body.add_special_tokens,
                                  truncate=body.truncate_prompt_tokens)
    request_id = f"{prefix}-{base_request_id(request, body.request_id)}"
    return request_id, await run_pooling(ctx, request, prompts, params, request_id, body.priority)


@router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=ERROR_RESPONSES)
async def create_embeddings(body: EmbeddingRequest, request: Request, ctx: ServerContext = Depends(get_context)):
    """Embed text or token ids (OpenAI's embeddings API)."""
    served = served_model(ctx, body, "embed", "/v1/embeddings")
    params = PoolingParams("embed", dimensions=body.dimensions, normalize=body.normalize,
                           truncate_prompt_tokens=body.truncate_prompt_tokens)
    request_id, outputs = await pool_inputs(ctx, request, body, params, "embd")
    data = [{"index": i, "object": "embedding", "embedding": encode_array(o.outputs.data, body.encoding_format)}
            for i, o in enumerate(outputs)]
    return json_response({"id": request_id, "object": "list", "created": int(time.time()), "model": served.name,
                          "data": data, "usage": usage(outputs)})


@router.post("/pooling", response_model=PoolingResponse, responses=ERROR_RESPONSES)
async def create_pooling(body: PoolingRequest, request: Request, ctx: ServerContext = Depends(get_context)):
    """The pooling runner's raw output (vLLM's): every token's hidden state (task encode),
    the embedding (embed) or class probabilities (classify)."""
    served = served_model(ctx, body, body.task, "/pooling")
    params = PoolingParams(body.task, dimensions=body.dimensions, normalize=body.normalize,
                           activation=body.activation, truncate_prompt_tokens=body.truncate_prompt_tokens)
    request_id, outputs = await pool_inputs(ctx, request, body, params, "pool")
    data = [{"index": i, "object": "pooling", "data": encode_array(o.outputs.data, body.encoding_format)}
            for i, o in enumerate(outputs)]
    return json_response({"id": request_id, "object": "list", "created": int(time.time()), "model": served.name,
                          "data": data, "usage": usage(outputs)})


@router.post("/classify", response_model=ClassificationResponse, responses=ERROR_RESPONSES)
async def create_classification(body: ClassificationRequest, request: Request,
                                ctx: ServerContext = Depends(get_context)):
    """Class probabilities and the most likely label of each input (vLLM's)."""
    served = served_model(ctx, body, "classify", "/classify")
    params = PoolingParams("classify", activation=body.activation, truncate_prompt_tokens=body.truncate_prompt_tokens)
    request_id, outputs = await pool_inputs(ctx, request, body, params, "classify")
    labels = ctx.model_info.pooling.labels
    data = []
    for i, output in enumerate(outputs):
        probs = output.outputs.data
        data.append({"index": i, "label": labels[int(probs.argmax())], "probs": probs.tolist(),
                     "num_classes": len(probs)})
    return json_response({"id": request_id, "object": "list", "created": int(time.time()), "model": served.name,
                          "data": data, "usage": usage(outputs)})
