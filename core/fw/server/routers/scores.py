"""POST /score and /v1/score (vLLM's), POST /rerank, /v1/rerank and /v2/rerank (Jina's and
Cohere's shape, as vLLM serves them).

A pair's score is a cross-encoder's (a one-label classifier reads both texts together,
with their token types: its sigmoid), or, for an embedding model, the cosine similarity
of the two texts' embeddings (each distinct text embedded once).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request

from fw.errors import InvalidParameterError
from fw.pooling.params import PoolingParams
from fw.server.context import ServerContext, base_request_id, get_context
from fw.server.json_body import StrictJSONRoute
from fw.server.pooling import run_pooling, serves
from fw.server.pooling_inputs import input_prompts, pair_prompts
from fw.server.protocol.scores import (
    RerankRequest,
    RerankResponse,
    ScoreRequest,
    ScoreResponse,
)
from fw.server.routers import ERROR_RESPONSES
from fw.server.routers.embeddings import json_response, served_model

router = APIRouter(tags=["Pooling"], route_class=StrictJSONRoute)


async def score_pairs(ctx: ServerContext, request: Request, pairs: list[tuple[str, str]], *, request_id: str,
                      truncate: int | None, activation: bool | None, priority: int,
                      param: str) -> tuple[list[float], int]:
    """Each pair's score, and the prompt tokens it took; ``param`` names the texts in errors."""
    if serves(ctx, "classify") and ctx.model_info.pooling.num_labels == 1:
        prompts = await pair_prompts(ctx, pairs, truncate=truncate)
        params = PoolingParams("classify", activation=activation, truncate_prompt_tokens=truncate)
        outputs = await run_pooling(ctx, request, prompts, params, request_id, priority, param)
        scores = [float(o.outputs.data[0]) for o in outputs]
    else:
        texts = list(dict.fromkeys(text for pair in pairs for text in pair))
        prompts = await input_prompts(ctx, texts, truncate=truncate, param=param)
        outputs = await run_pooling(ctx, request, prompts, PoolingParams("embed", truncate_prompt_tokens=truncate),
                                    request_id, priority, param)
        vectors = {text: o.outputs.data for text, o in zip(texts, outputs)}
        scores = [_cosine(vectors[a], vectors[b]) for a, b in pairs]
    return scores, sum(len(o.prompt_token_ids) for o in outputs)


def _cosine(a, b) -> float:
    import numpy as np

    return float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def _pairs(text_1: str | list[str], text_2: str | list[str]) -> list[tuple[str, str]]:
    """vLLM's pairing: one text_1 against every text_2, or text_1[i] against text_2[i]."""
    first = [text_1] if isinstance(text_1, str) else list(text_1)
    second = [text_2] if isinstance(text_2, str) else list(text_2)
    for name, texts in (("text_1", first), ("text_2", second)):
        if not texts:
            raise InvalidParameterError(name, "must not be empty")
        if any(not t for t in texts):
            raise InvalidParameterError(name, "holds an empty text")
    if len(first) == 1:
        return [(first[0], t) for t in second]
    if len(first) != len(second):
        raise InvalidParameterError("text_2", f"text_1 has {len(first)} texts and text_2 {len(second)}: pair one "
                                              "text_1 with any number of text_2, or as many of each")
    return list(zip(first, second))


async def _score(body: ScoreRequest, request: Request, ctx: ServerContext):
    served = served_model(ctx, body, "score", "/score")
    pairs = _pairs(body.text_1, body.text_2)
    request_id = f"score-{base_request_id(request, body.request_id)}"
    scores, tokens = await score_pairs(ctx, request, pairs, request_id=request_id,
                                       truncate=body.truncate_prompt_tokens, activation=body.activation,
                                       priority=body.priority, param="text_2")
    return json_response({
        "id": request_id, "object": "list", "created": int(time.time()), "model": served.name,
        "data": [{"index": i, "object": "score", "score": s} for i, s in enumerate(scores)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}})


@router.post("/score", response_model=ScoreResponse, responses=ERROR_RESPONSES)
async def create_score(body: ScoreRequest, request: Request, ctx: ServerContext = Depends(get_context)):
    """Score text pairs: text_1 against each text_2, or text_1[i] against text_2[i]."""
    return await _score(body, request, ctx)


@router.post("/v1/score", response_model=ScoreResponse, responses=ERROR_RESPONSES, include_in_schema=False)
async def create_score_v1(body: ScoreRequest, request: Request, ctx: ServerContext = Depends(get_context)):
    return await _score(body, request, ctx)


async def _rerank(body: RerankRequest, request: Request, ctx: ServerContext, endpoint: str):
    served = served_model(ctx, body, "score", endpoint)
    if not body.query:
        raise InvalidParameterError("query", "must not be empty")
    if not body.documents:
        raise InvalidParameterError("documents", "must not be empty")
    if any(not d for d in body.documents):
        raise InvalidParameterError("documents", "holds an empty document")
    request_id = f"rerank-{base_request_id(request, body.request_id)}"
    scores, tokens = await score_pairs(ctx, request, [(body.query, d) for d in body.documents],
                                       request_id=request_id, truncate=body.truncate_prompt_tokens, activation=None,
                                       priority=body.priority, param="documents")
    ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[: body.top_n or None]
    results = [{"index": i, "relevance_score": scores[i],
                **({"document": {"text": body.documents[i]}} if body.return_documents else {})} for i in ranked]
    return json_response({"id": request_id, "model": served.name, "usage": {"total_tokens": tokens},
                          "results": results})


@router.post("/rerank", response_model=RerankResponse, responses=ERROR_RESPONSES)
async def rerank(body: RerankRequest, request: Request, ctx: ServerContext = Depends(get_context)):
    """Rank documents by relevance to a query, best first (Jina's and Cohere's API)."""
    return await _rerank(body, request, ctx, "/rerank")


@router.post("/v1/rerank", response_model=RerankResponse, responses=ERROR_RESPONSES, include_in_schema=False)
async def rerank_v1(body: RerankRequest, request: Request, ctx: ServerContext = Depends(get_context)):
    return await _rerank(body, request, ctx, "/v1/rerank")


@router.post("/v2/rerank", response_model=RerankResponse, responses=ERROR_RESPONSES, include_in_schema=False)
async def rerank_v2(body: RerankRequest, request: Request, ctx: ServerContext = Depends(get_context)):
    return await _rerank(body, request, ctx, "/v2/rerank")
