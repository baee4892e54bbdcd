"""A real uvicorn server on a free loopback port, in a thread, over the fake engine."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

import httpx
import openai
import pytest

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
