"""A real uvicorn server on a free loopback port, in a thread, over the fake engine."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Callable, Iterator

import httpx
import openai
import pytest

from fw.config.options import build_bundle
from fw.config.serve import ServeConfig
from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import serve_config


class LiveServer:
    """``fw.server.launch.serve`` running in its own thread and event loop."""

    def __init__(self, engine: FakeEngine, config: ServeConfig):
        self.engine, self.config = engine, config
        self.server = None
        self.urls: list[str] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from fw.server.launch import serve

        def started(server, urls):
            self.server, self.urls = server, urls
            self._ready.set()

        try:
            asyncio.run(serve(self.engine, self.config, on_started=started))
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> "LiveServer":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or self.server is None:
            raise RuntimeError(f"server did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self._thread.join(15)

    @property
    def url(self) -> str:
        return self.urls[0]

    def server_context(self):
        """The app's ``fw.server.context.ServerContext``."""
        return self.server.config.app.state.fw

    def http(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def openai(self, api_key: str = "unused", **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, **kwargs)


@pytest.fixture
def start_server() -> Callable[..., LiveServer]:
    """``start_server(engine=None, **options)`` -> a started LiveServer, stopped after the test."""
    started: list[LiveServer] = []

    def start(engine: FakeEngine | None = None, **options: Any) -> LiveServer:
        live = LiveServer(engine or FakeEngine(), serve_config(**options)).start()
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


@pytest.fixture
def server(start_server) -> LiveServer:
    """A server with default options over a fresh fake engine."""
    return start_server()


class _Live:
    def __init__(self, url: str, server):
        self.url, self.server = url, server

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


@pytest.fixture(scope="session")
def real_server():
    """`fw serve` on the embedded SmolLM2 (real engine), shared by the slow server tests."""
    pytest.importorskip("fw.engine.async_engine", reason="the engine is not built yet")
    from fw.model_loader.default_model import DefaultModelMissing, default_model_path

    try:
        default_model_path()
    except DefaultModelMissing as exc:
        pytest.skip(str(exc))
    with real_engine_server(max_model_len=1024) as live:
        yield live


@contextlib.contextmanager
def real_engine_server(**options: Any) -> Iterator[_Live]:
    """`fw serve` (its run_server, on a thread) with ``options`` over a real engine: engine
    core processes by default, which stop with the server, also when the test fails."""
    from fw_builtins.commands.serve import run_server

    config = build_bundle(ServeConfig, {"port": 0, "disable_log_stats": True, "uvicorn_log_level": "warning",
                                        "disable_uvicorn_access_log": True, **options})
    box: dict = {}
    ready = threading.Event()

    def started(server, urls):
        box.update(server=server, url=urls[0])
        ready.set()

    def serve():
        try:
            run_server(config, on_started=started)
        except BaseException as exc:  # noqa: BLE001 - reported by the waiting test
            box["failure"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        # a server that fails to start (an engine core that dies loading) ends the wait at once
        assert ready.wait(600), "the server did not start within 600 s"
        assert "url" in box, f"the server stopped before it was ready: {box.get('failure')!r}"
        yield _Live(box["url"], box["server"])
    finally:
        if "server" in box:
            box["server"].should_exit = True
        thread.join(60)
