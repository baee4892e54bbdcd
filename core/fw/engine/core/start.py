"""``fw serve``'s engine: its engine cores started, and the client that talks to them.

The API server needs the tokenizer too (it renders chat templates and tokenizes); it is
loaded here, by the same loader code as the engine's, while the engine cores start.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fw.config import EngineConfig
from fw.engine.core.client import EngineCoreClient
from fw.engine.core.launcher import EngineLauncher


def load_tokenizer(config: EngineConfig) -> Any:
    from fw.model_loader.select import get_loader, resolve_model

    resolved = resolve_model(config.model, config.load)
    return get_loader(resolved.path, config.load, resolved.model_config).tokenizer()


def start_engine_client(config: EngineConfig, *, shutdown_timeout: float = 30.0) -> EngineCoreClient:
    """Start this server's engine cores and return its client (which stops them on
    ``shutdown``). Raises the first engine core's start-up error. ``shutdown_timeout``:
    the server's drain, which a SIGTERMed engine core outlasts."""
    from fw.model_loader.select import resolve_model

    # A hub id is fetched here, once, with its progress on this process's terminal; the
    # engine cores and the tokenizer then find it in the Hugging Face cache.
    resolve_model(config.model, config.load)
    launcher = EngineLauncher(config, term_grace=shutdown_timeout + 10)
    with ThreadPoolExecutor(1, thread_name_prefix="fw-tokenizer") as pool:
        tokenizer = pool.submit(load_tokenizer, config)
        try:
            handles = launcher.start()
        except BaseException:
            tokenizer.cancel()
            raise
        try:
            loaded = tokenizer.result()
        except BaseException:
            launcher.stop()
            raise
    client = EngineCoreClient(handles, launcher.output_addresses[0], 0, loaded,
                              prefix_aware=config.parallel.data_parallel_routing == "prefix",
                              sleep_enabled=config.model.enable_sleep_mode)
    client.launcher = launcher
    return client
