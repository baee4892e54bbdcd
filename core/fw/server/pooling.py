"""Pooling requests on behalf of one HTTP request: which endpoint the model serves, its
prompts through the engine, and outputs in the API's encodings.

Every prompt of a request is one engine request (``EngineClient.encode``), submitted
together (at most ``MAX_IN_FLIGHT`` at a time, so one request of 2,048 inputs does not
fill the engine's waiting queue) so they share steps with everything else; the engine's
admission checks them and its refusals come back as 400s naming the API's parameter
(``input``). A request that fails, or whose client goes away, aborts the prompts still
running.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Sequence

import anyio
from fastapi import Request

from fw.engine.outputs import PoolingRequestOutput
from fw.engine.protocol import TokensPrompt
from fw.errors import FwError, NotSupportedError
from fw.pooling.params import PoolingParams
from fw.server.context import ServerContext
from fw.server.errors import rename_param
from fw.server.pooling_inputs import PoolingPrompt
from fw.server.sse import until_disconnected

#: the most prompts of one HTTP request in the engine at once
MAX_IN_FLIGHT = 256

def serves(ctx: ServerContext, task: str) -> bool:
    """Whether the served model does ``task``; "score" takes an embedding model (cosine
    similarity) or a cross-encoder (a one-label classifier)."""
    info = ctx.model_info
    if task == "score":
        return "embed" in info.tasks or ("classify" in info.tasks and info.pooling.num_labels == 1)
    return task in info.tasks


def require_task(ctx: ServerContext, task: str, endpoint: str) -> None:
    """Refuse (400) an endpoint the served model's runner does not serve, saying which does."""
    info = ctx.model_info
    if serves(ctx, task):
        return
    if task == "generate":
        raise NotSupportedError(f"{endpoint}: served by the generate runner (text generation), but this model "
                                "runs the pooling runner; it serves /v1/embeddings, /pooling, /score, /rerank or "
                                "/classify, as its tasks allow")
    if info.runner == "generate":
        raise NotSupportedError(f"{endpoint}: served by the pooling runner, but this model runs the generate "
                                "runner; start the server with --enable-embeddings to embed with it (or serve an "
                                "embedding model, which runs the pooling runner)")
    wanted = {"embed": "an embedding model (--convert embed)",
              "classify": "a classification model (a *ForSequenceClassification checkpoint)",
              "score": "a cross-encoder (a classifier with one label) or an embedding model"}[task]
    raise NotSupportedError(f"{endpoint}: needs {wanted}, but this model's pooling runner serves "
                            f"{', '.join(t for t in info.tasks if t != 'encode')}")


def encode_array(array: Any, encoding_format: str) -> Any:
    """A float32 array as JSON numbers, or as base64 of its little-endian float32 bytes."""
    if encoding_format == "base64":
        return base64.b64encode(array.astype("<f4", copy=False).tobytes()).decode("ascii")
    return array.tolist()


async def _one(ctx: ServerContext, prompt: PoolingPrompt, params: PoolingParams, request_id: str,
               priority: int, gate: asyncio.Semaphore) -> PoolingRequestOutput:
    async with gate:
        return await _submit(ctx, prompt, params, request_id, priority)


async def _submit(ctx: ServerContext, prompt: PoolingPrompt, params: PoolingParams, request_id: str,
                  priority: int) -> PoolingRequestOutput:
    engine_prompt = TokensPrompt(prompt_token_ids=prompt.token_ids)
    if prompt.text is not None:
        engine_prompt["prompt"] = prompt.text
    if prompt.token_type_ids is not None:
        engine_prompt["token_type_ids"] = prompt.token_type_ids
    ctx.request_log.request(request_id, prompt.text, prompt.token_ids, params)
    tracker = ctx.metrics.track(len(prompt.token_ids))
    stream = ctx.engine.encode(engine_prompt, params, request_id, priority=priority)
    ctx.lifecycle.started(request_id)
    try:
        async for output in stream:
            tracker.pooled(output)
            if output.outputs is None:  # ended unpooled: the server is shutting down
                raise ctx.lifecycle.shutdown_error()
            return output
        raise RuntimeError(f"the engine ended {request_id} without an output")
    finally:
        ctx.lifecycle.ended(request_id)
        if not tracker.finished:
            tracker.aborted(1)
        with anyio.CancelScope(shield=True):
            await stream.aclose()


async def run_pooling(ctx: ServerContext, request: Request, prompts: Sequence[PoolingPrompt],
                      params: PoolingParams, request_id: str, priority: int = 0,
                      input_param: str = "input") -> list[PoolingRequestOutput]:
    """Every prompt's output, in order; refusals raise (400 naming ``input_param``, the
    API's name of the prompts), and a client that disconnects has the prompts still
    running aborted."""
    ctx.lifecycle.admit()
    ids = [request_id if len(prompts) == 1 else f"{request_id}-{i}" for i in range(len(prompts))]
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks = [asyncio.ensure_future(_one(ctx, p, params, rid, priority, gate)) for p, rid in zip(prompts, ids)]
    try:
        return list(await until_disconnected(request, asyncio.gather(*tasks)))
    except FwError as exc:
        rename_param(exc, {"prompt": input_param})
        raise
    finally:
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(*tasks, return_exceptions=True)


def usage(outputs: Sequence[PoolingRequestOutput]) -> dict[str, int]:
    tokens = sum(len(o.prompt_token_ids) for o in outputs)
    return {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}
