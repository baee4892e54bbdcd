"""The engine core process: its entry point, and what makes it stop.

``run_engine_core`` is the process's entry point (the launcher spawns it; a Ray actor
calls it). It reports start-up phases to the launcher, then ``Ready`` with its input
address and the model's facts, and serves (``fw.engine.core.engine_core``) until told to
shut down, its launcher dies, or SIGTERM's grace runs out.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import zmq

from fw.engine.core import messages as m
from fw.engine.core.binding import CoreBinding

logger = logging.getLogger("fw.engine")


@dataclass
class CoreSpec:
    """Everything an engine core process needs to start (it is pickled to the child)."""

    rank: int
    #: EngineConfig.model_dump()
    config: dict[str, Any]
    handshake_address: str
    #: where to bind the input socket (a port of 0 on tcp picks a free one)
    input_address: str
    binding: CoreBinding
    log_level: int = logging.INFO
    #: after SIGTERM, how long to keep serving while the API server drains (it sends
    #: Shutdown when done; systemd and `timeout` signal every process of the group at once)
    term_grace: float = 40.0


def run_engine_core(spec: CoreSpec) -> None:
    """The engine core process's main: start, serve, exit."""
    parent = os.getppid()
    spec.binding.apply()  # before torch's thread pool exists
    from fw.engine.core.engine_core import EngineCore  # torch: here, not in the launcher's process
    _set_title(spec.rank)
    _die_with_parent()
    deadline: list[float] = []
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the launcher decides
        signal.signal(signal.SIGTERM, lambda *_: deadline.append(time.monotonic() + spec.term_grace))
    except ValueError:  # not the main thread (a Ray actor's task): Ray handles signals there
        pass
    logging.basicConfig(level=spec.log_level, datefmt="%H:%M:%S",
                        format=f"%(levelname)s %(asctime)s %(name)s (engine {spec.rank}): %(message)s")
    context = zmq.Context()
    handshake = context.socket(zmq.DEALER)
    handshake.connect(spec.handshake_address)
    try:
        core = EngineCore.start(spec, context, handshake, lambda: _must_stop(parent, deadline))
    except SystemExit:  # told to stop while starting
        handshake.close(linger=0)
        context.term()
        raise
    except BaseException as exc:  # noqa: BLE001 - the launcher must learn why, whatever it was
        logger.exception("engine core %d failed to start", spec.rank)
        handshake.send(m.encoder.encode(m.StartupFailed(spec.rank, m.error_info(exc))))
        handshake.close(linger=2000)
        context.term()
        raise SystemExit(1) from None
    handshake.close(linger=1000)
    try:
        core.serve()
    finally:
        core.close()
        context.term()


def _must_stop(parent: int, deadline: list[float]) -> str | None:
    """Why this engine core must stop now (its launcher is gone, or SIGTERM's grace has
    run out), or None."""
    if os.getppid() != parent:
        return "the launcher is gone"
    if deadline and time.monotonic() > deadline[0]:
        return "SIGTERM, and no shutdown came in time"
    return None


def _set_title(rank: int) -> None:
    try:
        import setproctitle

        setproctitle.setproctitle("fw::engine_core" if rank == 0 else f"fw::engine_core_dp{rank}")
    except ImportError:  # pragma: no cover - a declared dependency
        pass


def _die_with_parent() -> None:
    """Ask Linux to end this process when its parent does (a killed API server must not
    leave engine cores behind)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
