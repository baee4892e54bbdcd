"""build_app: the FastAPI application over an engine.

Middleware, outermost first: ``--middleware`` entries, the header-count limit, the load
count (--enable-server-load-tracking), the trace context (--otlp-traces-endpoint), CORS
(outside the key check, so preflights and 401s carry CORS headers), X-Request-Id, the API
key check, the body-size limit (after the key check: a stranger's body is never read),
and the last-resort 500 handler. Plugins' ``fw_asgi_middleware`` wrappers go around all
of it (``fw.server.middleware.apply_asgi_hooks``, applied by the launcher).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response

from fw.config.serve import ServeConfig
from fw.engine.protocol import EngineClient
from fw.server.auth import APIKeyMiddleware
from fw.server.body_limit import BodyLimitMiddleware
from fw.server.context import ServerContext
from fw.server.docs import install_docs
from fw.server.errors import InternalErrorMiddleware, install_error_handlers
from fw.server.headers import HeaderLimitMiddleware, RequestIdMiddleware
from fw.server.load import LoadTrackingMiddleware
from fw.server.load import router as load_router
from fw.server.middleware import add_user_middleware
from fw.server.openapi import describe_real_answers
from fw.server.routers import (
    chat, completions, embeddings, health, lora, messages, metrics, models, responses, scores, sleep, tokenize,
)
from fw.server.sse import ClientDisconnected
from fw.server.stats_log import log_stats_forever
from fw.server.tracing import TracingMiddleware
from fw.version import __version__

DESCRIPTION = ("OpenAI-compatible API of fw: completions, chat completions, responses, embeddings, models, "
               "tokenizer; vLLM's pooling, score, rerank and classify APIs; and Anthropic's Messages API.")


def build_app(engine: EngineClient, config: ServeConfig) -> FastAPI:
    """The server application for ``engine``; raises ValueError for a bad option
    (--chat-template, --middleware) so the server fails before it listens."""
    frontend = config.frontend
    ctx = ServerContext.create(engine, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None if config.options.disable_log_stats else asyncio.create_task(
            log_stats_forever(engine, ctx.metrics))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            await ctx.responses.aclose()
            if ctx.tracer is not None:
                ctx.tracer.shutdown()
            ctx.preprocess.shutdown()

    docs = not frontend.disable_fastapi_docs
    app = FastAPI(
        title="fw", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url="/openapi.json" if docs else None,
    )
    app.state.fw = ctx
    install_error_handlers(app, log_error_stack=frontend.log_error_stack)
    app.add_exception_handler(ClientDisconnected, _client_gone)
    for module in (health, models, completions, chat, responses, messages, embeddings, scores, tokenize, metrics):
        app.include_router(module.router)
    if frontend.enable_tokenizer_info_endpoint:
        app.include_router(tokenize.info_router)
    if lora.runtime_updates_allowed():
        app.include_router(lora.router)
    if frontend.enable_server_load_tracking:
        app.include_router(load_router)
    if config.model.enable_sleep_mode:
        app.include_router(sleep.router)
    if docs:
        install_docs(app)
    describe_real_answers(app)

    # add_middleware puts each new one outside the previous ones
    app.add_middleware(InternalErrorMiddleware, log_error_stack=frontend.log_error_stack)
    app.add_middleware(BodyLimitMiddleware, max_bytes=frontend.max_request_body_bytes)
    if frontend.api_key:
        app.add_middleware(APIKeyMiddleware, keys=frontend.api_key,
                           tokenizer_paths_open=frontend.tokenize_without_api_key)
    if frontend.enable_request_id_headers:
        app.add_middleware(RequestIdMiddleware)
    app.add_middleware(
        CORSMiddleware, allow_origins=frontend.allowed_origins, allow_credentials=frontend.allow_credentials,
        allow_methods=frontend.allowed_methods, allow_headers=frontend.allowed_headers,
    )
    if ctx.tracer is not None:
        app.add_middleware(TracingMiddleware)
    if frontend.enable_server_load_tracking:
        app.add_middleware(LoadTrackingMiddleware, state=app.state)
    app.add_middleware(HeaderLimitMiddleware, max_headers=frontend.h11_max_header_count)
    add_user_middleware(app, frontend.middleware)
    return app


async def _client_gone(request, exc) -> Response:
    """Nobody reads this answer: the client closed the connection (its request is
    already aborted). 499 is the conventional log status for it."""
    return Response(status_code=499)
