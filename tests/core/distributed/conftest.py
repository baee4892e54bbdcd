"""Tensor-parallel tests start processes (workers, Ray's): each test's engines are shut
down when it ends, failed or not, and a test fails if any process it started outlives
it (each one left is then ended by its own id)."""

from __future__ import annotations

import time

import psutil
import pytest


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:120]}"
    except psutil.Error:
        return str(process.pid)


@pytest.fixture
def no_process_left():
    """Fails the test if a process started during it (a descendant of this one) is still
    there 30 s after it ended; ends those by their ids."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 30
    while True:
        left = [p for p in me.children(recursive=True) if p.pid not in before and _alive(p)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    names = [_describe(p) for p in left]
    for process in left:
        process.kill()
    assert not left, f"processes left behind: {names}"


@pytest.fixture
def tp_llm(no_process_left):
    """``tp_llm(path, **options)`` -> an ``fw.LLM`` in float32, shut down after the test."""
    from fw import LLM

    started = []

    def build(path, **options):
        llm = LLM(str(path), dtype="float32", **options)
        started.append(llm)
        return llm

    yield build
    for llm in started:
        llm.engine.shutdown()
