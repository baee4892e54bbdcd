"""How the server stops: drained on a signal, or at once when its engine is gone.

On SIGTERM the server stops accepting connections, answers new requests on open ones
with 503, lets running requests finish for up to ``--shutdown-timeout`` seconds, then
ends the rest (a stream gets its ``abort`` chunk, an error event and ``[DONE]``; a
non-streamed request a 503) and exits 0. SIGINT (Ctrl-C) does the same without the wait;
a second Ctrl-C quits at once. When no engine is left to serve, the server exits with
an error so that a supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

from fw.errors import EngineDeadError, OverloadedError

logger = logging.getLogger("fw.server")


class Lifecycle:
    """The server's in-flight requests and whether it is draining."""

    def __init__(self, engine, shutdown_timeout: float):
        self.engine = engine
        self.shutdown_timeout = shutdown_timeout
        self.in_flight: set[str] = set()
        self.draining = False
        #: set once draining has ended the requests that were still running
        self.cut = False
        self._idle = asyncio.Event()
        self._idle.set()
        #: why the server stopped on its own (the engine died), if it did
        self.failure: EngineDeadError | None = None

    def admit(self) -> None:
        """Refuse new work while draining (HTTP 503: retry on another replica)."""
        if self.draining:
            raise OverloadedError("the server is shutting down; send the request to another replica",
                                  retry_after=5)

    def started(self, request_id: str) -> None:
        self.in_flight.add(request_id)
        self._idle.clear()

    def ended(self, request_id: str) -> None:
        self.in_flight.discard(request_id)
        if not self.in_flight:
            self._idle.set()

    def shutdown_error(self) -> OverloadedError:
        return OverloadedError("the server is shutting down; the request was ended before it finished",
                               retry_after=5)

    async def drain(self, timeout: float) -> None:
        """Wait for the running requests up to ``timeout`` seconds, then end the rest."""
        self.draining = True
        if self.in_flight:
            logger.info("draining: waiting up to %.0f s for %d running request(s)", timeout, len(self.in_flight))
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        if self.in_flight:
            logger.warning("draining: ending %d request(s) still running", len(self.in_flight))
            self.cut = True
            for request_id in list(self.in_flight):
                await self.engine.abort(request_id)
            try:
                await asyncio.wait_for(self._idle.wait(), 5.0)
            except asyncio.TimeoutError:
                logger.warning("draining: %d request(s) did not end", len(self.in_flight))


class Server(uvicorn.Server):
    """uvicorn's server, stopped the fw way (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle):
        super().__init__(config)
        self.lifecycle = lifecycle
        self._drain_task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in _captured_signals: uvicorn would re-raise it after shutting down,
        # and the process would die by the signal instead of exiting 0 after draining.
        if self._loop is None:
            self.force_exit = self.should_exit = True
            return
        if self._drain_task is not None:
            if sig == signal.SIGINT:  # Ctrl-C again: quit now
                self.force_exit = self.should_exit = True
            return  # a repeated SIGTERM (`timeout` and systemd signal the whole group) changes nothing
        timeout = 0.0 if sig == signal.SIGINT else self.lifecycle.shutdown_timeout
        self._loop.call_soon_threadsafe(self._start_drain, timeout)

    def _start_drain(self, timeout: float) -> None:
        logger.info("shutting down: no new connections; running requests get %.0f s", timeout)
        for server in self.servers:
            server.close()  # stop accepting
        self._drain_task = asyncio.ensure_future(self._drain_then_exit(timeout))

    async def _drain_then_exit(self, timeout: float) -> None:
        await self.lifecycle.drain(timeout)
        self.should_exit = True

    def engine_died(self, error: EngineDeadError) -> None:
        """The engine client's ``on_dead``: stop serving, and make the process fail."""
        self.lifecycle.failure = error
        self.lifecycle.draining = True
        self.should_exit = True
