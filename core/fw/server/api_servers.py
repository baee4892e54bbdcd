"""The process layouts of `fw serve` beyond one API server over its engine cores.

``--api-server-count N``: this process starts the engine cores, binds the listening
socket once, and spawns N API server processes that share it (the kernel hands each new
connection to one of them) and every engine core, each through its own client. It then
supervises: SIGTERM or SIGINT is passed on to the API servers, which drain; when they
have exited, the engine cores are stopped. An API server that stops on its own (no engine
core left) makes the whole server stop and exit non-zero.

``--headless``: a secondary node of a multi-node data parallel deployment runs only its
engine cores, which join the head node's server (``--data-parallel-address``/``-rpc-port``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from typing import Any

from fw.config.serve import ServeConfig
from fw.errors import ConfigurationError

logger = logging.getLogger("fw.serve")


def _launcher(config: ServeConfig, **kwargs: Any):
    from fw.engine.core.launcher import EngineLauncher

    return EngineLauncher(config.engine_config(), term_grace=config.options.shutdown_timeout + 10, **kwargs)


def _bind(config: ServeConfig) -> socket.socket:
    fe = config.frontend
    family = socket.AF_INET6 if ":" in fe.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((fe.host, fe.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Signals:
    """The first SIGTERM/SIGINT this supervisor gets, to pass on."""

    def __init__(self) -> None:
        self.received: int | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, sig: int, frame: Any) -> None:
        self.received = self.received or sig


def serve_with_api_servers(config: ServeConfig) -> int:
    """Engine cores plus ``--api-server-count`` API server processes; the exit status."""
    if config.frontend.disable_frontend_multiprocessing:
        raise ConfigurationError("--api-server-count > 1 needs the engine in its own processes; drop "
                                 "--disable-frontend-multiprocessing")
    if config.frontend.uds:
        raise ConfigurationError("--api-server-count > 1 shares a TCP port; it cannot serve on --uds")
    count = config.options.api_server_count
    launcher = _launcher(config, num_clients=count)
    handles = launcher.start()
    signals = _Signals()
    servers = []
    try:
        sock = _bind(config)
        context = multiprocessing.get_context("spawn")
        for index in range(count):
            process = context.Process(target=run_api_server, name=f"fw-api-server-{index}",
                                      args=(config.model_dump(), handles, launcher.output_addresses[index], index,
                                            sock))
            process.start()
            servers.append(process)
        sock.close()
        logger.info("%d API servers over %d engine core(s) on %s:%d", count, len(handles), config.frontend.host,
                    config.frontend.port)
        failed = _supervise(servers, signals)
    finally:
        for process in servers:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in servers:
            process.join(config.options.shutdown_timeout + 15)
            if process.is_alive():
                process.kill()
                process.join(5)
        launcher.stop()
    return 1 if failed else 0


def _supervise(servers: list, signals: _Signals) -> bool:
    """Wait until a signal comes (passed on) or an API server stops; True if one failed."""
    passed_on: int | None = None  # the signal passed on to the API servers
    while True:
        if signals.received is not None and passed_on is None:
            for process in servers:
                if process.is_alive():
                    os.kill(process.pid, signals.received)
            passed_on = signals.received
        stopped = [p for p in servers if p.exitcode is not None]
        if len(stopped) == len(servers):
            # One that died by the signal passed on had not started serving: nothing was lost.
            clean = (0, -passed_on) if passed_on else (0,)
            return any(p.exitcode not in clean for p in stopped)
        if stopped and passed_on is None:
            logger.error("API server %s stopped (exit %d); stopping the others", stopped[0].name, stopped[0].exitcode)
            for process in servers:
                if process.is_alive():
                    os.kill(process.pid, signal.SIGTERM)
            passed_on = signal.SIGTERM
        time.sleep(0.2)


def run_api_server(config_dump: dict, handles: list, output_address: str, index: int, sock: socket.socket) -> None:
    """An API server process's main: a client of every engine core, serving on ``sock``."""
    import asyncio

    from fw.engine.core.client import EngineCoreClient
    from fw.engine.core.start import load_tokenizer
    from fw.server.launch import serve

    logging.basicConfig(level=logging.INFO, datefmt="%H:%M:%S",
                        format=f"%(levelname)s %(asctime)s %(name)s (api server {index}): %(message)s")
    try:
        import setproctitle

        setproctitle.setproctitle(f"fw::api_server_{index}")
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    config = ServeConfig.model_validate(config_dump)
    engine_config = config.engine_config()
    client = EngineCoreClient(handles, output_address, index, load_tokenizer(engine_config),
                              prefix_aware=engine_config.parallel.data_parallel_routing == "prefix",
                              sleep_enabled=engine_config.model.enable_sleep_mode)

    async def main():
        try:
            return await serve(client, config, sockets=[sock])
        finally:
            await client.shutdown()

    failure = asyncio.run(main())
    sys.exit(1 if failure is not None else 0)


def serve_headless(config: ServeConfig) -> int:
    """Only this node's engine cores, until a signal or their end; the exit status."""
    launcher = _launcher(config, headless=True)
    signals = _Signals()
    launcher.start()
    logger.info("headless: engine core(s) %s joined %s:%s", ", ".join(map(str, launcher.ranks)),
                config.parallel.data_parallel_address, config.parallel.data_parallel_rpc_port)
    try:
        while signals.received is None:
            dead = launcher.dead_ranks()
            if len(dead) == len(launcher.ranks):
                logger.error("every engine core of this node has stopped")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        launcher.stop()
