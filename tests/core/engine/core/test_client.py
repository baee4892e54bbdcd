"""How the API server's engine client decides that an engine core has died."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from fw.engine.core import client as client_module
from fw.engine.core.client import _Engine
from fw.engine.core.launcher import EngineHandle


def _engine(pid: int, hostname: str, silent_for: float) -> _Engine:
    handle = EngineHandle(rank=0, input_address="ipc:///unused", pid=pid, hostname=hostname,
                          model_info=None, stats=None)
    return _Engine(handle, load=None, last_heard=time.monotonic() - silent_for)


def _exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_local_engine_busy_in_a_long_step_is_alive():
    # a step longer than any heartbeat timeout (a large prefill on a loaded machine)
    engine = _engine(os.getpid(), socket.gethostname(), silent_for=10 * client_module.HEARTBEAT_TIMEOUT_S)
    assert not engine.seems_dead(time.monotonic())


def test_a_local_engine_whose_process_exited_is_dead_at_once():
    engine = _engine(_exited_pid(), socket.gethostname(), silent_for=0.0)
    assert engine.seems_dead(time.monotonic())


def test_a_remote_engine_is_judged_by_its_silence():
    now = time.monotonic()
    quiet = _engine(os.getpid(), "another-host", silent_for=client_module.HEARTBEAT_TIMEOUT_S / 2)
    silent = _engine(os.getpid(), "another-host", silent_for=client_module.HEARTBEAT_TIMEOUT_S + 1)
    assert not quiet.seems_dead(now)
    assert silent.seems_dead(now)
