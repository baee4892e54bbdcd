"""Running the app under uvicorn with the Frontend options (address, TLS, limits, logs)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any, Callable

import uvicorn

from fw.chat.template import chat_template_option
from fw.config.serve import ServeConfig
from fw.engine.generation_config import read_folder
from fw.engine.protocol import EngineClient
from fw.errors import EngineDeadError
from fw.server.app import build_app
from fw.server.lifecycle import Server
from fw.server.log_config import apply_log_config, read_log_config
from fw.server.middleware import apply_asgi_hooks, import_path
from fw.server.ssl_refresh import refresh_ssl_forever
from fw.structured.selection import canonical_backend

logger = logging.getLogger("fw.server")


def check_options(config: ServeConfig) -> None:
    """Reject bad server options (ValueError) before the slow engine load, not after, and
    apply --log-config-file, so the load is logged as configured."""
    fe = config.frontend
    log_config = read_log_config(fe.log_config_file)
    if log_config is not None:
        apply_log_config(log_config)
    canonical_backend(config.structured_outputs.guided_decoding_backend)  # a typo fails before the load
    if config.model.generation_config not in ("auto", "vllm"):
        read_folder(config.model.generation_config)
    if config.scheduler.scheduler_cls is not None:  # the engine's modules import torch: only when asked
        from fw.engine.scheduler import scheduler_class

        scheduler_class(config.scheduler.scheduler_cls)
    if config.observability.collect_detailed_traces and not config.options.otlp_traces_endpoint:
        raise ValueError("--collect-detailed-traces adds to the spans --otlp-traces-endpoint sends; give that too")
    chat_template_option(fe.chat_template)
    if config.model.logits_processors or config.model.logits_processor_pattern:
        from fw.logits_processors.engine import check_options as check_logits_processors

        check_logits_processors(config.model.logits_processors, config.model.logits_processor_pattern)
    for path in fe.middleware:
        import_path(path)
    if fe.enable_ssl_refresh and not fe.ssl_certfile:
        raise ValueError("--enable-ssl-refresh reloads --ssl-certfile / --ssl-keyfile; give those too")
    for name in ("ssl_keyfile", "ssl_certfile", "ssl_ca_certs"):
        value = getattr(fe, name)
        if value is not None and not os.path.isfile(value):
            raise ValueError(f"--{name.replace('_', '-')}: no such file {value!r}")
    for root in config.lora.lora_path_roots:
        if not os.path.isdir(root):
            raise ValueError(f"--lora-path-roots: no such folder {root!r}")


def uvicorn_config(app: Any, config: ServeConfig) -> uvicorn.Config:
    fe = config.frontend
    return uvicorn.Config(
        app,
        host=fe.host, port=fe.port, uds=fe.uds, root_path=fe.root_path or "",
        # h11 honours the incomplete-event limit (httptools would ignore it)
        http="h11", h11_max_incomplete_event_size=fe.h11_max_incomplete_event_size,
        log_level=fe.uvicorn_log_level, access_log=not fe.disable_uvicorn_access_log,
        **({"log_config": log_config} if (log_config := read_log_config(fe.log_config_file)) else {}),
        ssl_keyfile=fe.ssl_keyfile, ssl_certfile=fe.ssl_certfile, ssl_ca_certs=fe.ssl_ca_certs,
        ssl_cert_reqs=fe.ssl_cert_reqs,
        # uvicorn's clock starts with the signal, as fw's drain (fw.server.lifecycle) does:
        # the connections get the drain's --shutdown-timeout, then 5 s more to close
        timeout_graceful_shutdown=config.options.shutdown_timeout + 5,
    )


def server_urls(server: uvicorn.Server, config: ServeConfig) -> list[str]:
    """Where a started server listens (the real port when --port 0 was given)."""
    fe = config.frontend
    scheme = "https" if fe.ssl_certfile else "http"
    root = fe.root_path or ""
    if fe.uds:
        return [f"{scheme}+unix://{fe.uds}{root}"]
    urls = []
    for srv in server.servers:
        for sock in srv.sockets:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            host, port = sock.getsockname()[:2]
            host = f"[{host}]" if sock.family == socket.AF_INET6 else host
            urls.append(f"{scheme}://{host}:{port}{root}")
    return urls


async def serve(engine: EngineClient, config: ServeConfig, *,
                on_started: Callable[[uvicorn.Server, list[str]], None] | None = None,
                sockets: list[socket.socket] | None = None) -> EngineDeadError | None:
    """Serve until the process is told to stop (SIGTERM drains, see
    ``fw.server.lifecycle``) or ``server.should_exit`` is set; ``on_started`` gets the
    server and its URLs once it listens. Returns the ``EngineDeadError`` when the server
    stopped because no engine was left (its caller fails with it), else None.
    ``sockets``: already listening sockets to serve on (API servers sharing one port)."""
    fw_app = build_app(engine, config)
    app = apply_asgi_hooks(fw_app, config)
    server = Server(uvicorn_config(app, config), fw_app.state.fw.lifecycle)
    engine.on_dead(server.engine_died)
    task = asyncio.create_task(server.serve(sockets))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        urls = server_urls(server, config)
        names = ", ".join(engine.model_info.served_model_names or [engine.model_info.name])
        for url in urls:
            docs = "" if config.frontend.disable_fastapi_docs else f" (API docs: {url}/docs)"
            logger.info("serving %s on %s%s", names, url, docs)
        if on_started is not None:
            on_started(server, urls)
    refresh = (asyncio.create_task(refresh_ssl_forever(server.config.ssl, config.frontend))
               if config.frontend.enable_ssl_refresh and server.config.ssl is not None else None)
    try:
        await task
    finally:
        if refresh is not None:
            refresh.cancel()
    return fw_app.state.fw.lifecycle.failure
