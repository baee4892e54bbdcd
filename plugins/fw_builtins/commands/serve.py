"""`fw serve`: load the engine and serve the OpenAI-compatible API.

Only the config models are imported at module level, so `fw serve --help` stays quick;
the engine, FastAPI and uvicorn are imported when the server actually starts.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import click

from fw.cli.config_command import config_command
from fw.config.serve import ServeConfig
from fw.errors import FwError

logger = logging.getLogger("fw.serve")

EngineFactory = Callable[[ServeConfig], Any]


def build_engine(config: ServeConfig) -> Any:
    """The real engine (blocking: loads the weights and sizes the KV cache): engine core
    processes behind a client, or with --disable-frontend-multiprocessing one engine on a
    thread of this process."""
    import fw_kernels

    fw_kernels.start_cpu_build()  # a first start compiles fw's CPU kernels while the engine imports torch
    if config.frontend.disable_frontend_multiprocessing:
        from fw.engine.async_engine import AsyncEngine

        return AsyncEngine.from_config(config.engine_config())
    from fw.engine.core.start import start_engine_client

    return start_engine_client(config.engine_config(), shutdown_timeout=config.options.shutdown_timeout)


def _log_plugins() -> None:
    from fw.plugins import get_host

    plugins = get_host().plugins.values()
    loaded = sorted(p.name for p in plugins if not p.error)
    failed = sorted(p.name for p in plugins if p.error)
    logger.info("plugins loaded: %s", ", ".join(loaded) or "none")
    if failed:
        logger.warning("plugins that failed to load: %s (see `fw plugins`)", ", ".join(failed))


async def _load_and_serve(config: ServeConfig, engine_factory: EngineFactory,
                          on_started: Callable[..., None] | None) -> FwError | None:
    from fw.server.launch import check_options, serve

    check_options(config)
    _log_plugins()
    start = time.perf_counter()
    engine = engine_factory(config)
    logger.info("engine ready in %.2f s (model %s, context length %d)", time.perf_counter() - start,
                engine.model_info.path, engine.model_info.max_model_len)
    try:
        return await serve(engine, config, on_started=on_started)
    finally:
        await engine.shutdown()


def run_server(config: ServeConfig, engine_factory: EngineFactory = build_engine, *,
               on_started: Callable[..., None] | None = None) -> None:
    """Load the engine with ``engine_factory`` and serve until stopped. Tests pass a
    factory returning a fake engine, and ``on_started(server, urls)`` to learn the
    address and to stop it (``server.should_exit = True``). Raises the engine's death,
    when that is what stopped the server."""
    import asyncio

    failure = asyncio.run(_load_and_serve(config, engine_factory, on_started))
    if failure is not None:
        raise failure


def run_worker_node(config: ServeConfig) -> int:
    """A tensor-parallel worker node (``--nnodes M --node-rank K --headless``): no API
    server, only this node's ranks, until node 0's engine stops them."""
    if not config.options.headless:
        raise FwError(f"--node-rank {config.parallel.node_rank} runs only tensor-parallel ranks: add --headless "
                      "(node 0 serves the API)")
    from fw.distributed.launch import run_worker_node as run_node

    return run_node(config.engine_config())


@config_command(
    ServeConfig, name="serve", positional="model",
    help="Start the OpenAI-compatible API server. It listens on 127.0.0.1:8000 unless told "
         "otherwise (--host 0.0.0.0 exposes it to the network).",
    positional_help="The model to serve: a Hugging Face model folder, a .gguf file, or a hub id "
                    "(ORG/NAME, ORG/NAME:Q4_K_M for a GGUF repo's file; from the Hugging Face cache, "
                    "else downloaded) (default: the embedded SmolLM2-135M-Instruct).",
)
def serve(config: ServeConfig) -> None:
    try:
        if config.parallel.nnodes > 1 and (config.parallel.node_rank > 0 or config.options.headless):
            raise SystemExit(run_worker_node(config))
        if config.options.headless or config.options.api_server_count > 1:
            from fw.server.api_servers import serve_headless, serve_with_api_servers

            status = (serve_headless if config.options.headless else serve_with_api_servers)(config)
            if status:
                raise click.exceptions.Exit(status)
            return
        run_server(config)
    except (ValueError, FwError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
