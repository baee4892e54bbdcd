"""Rank 0's wait for the other ranks, over a real store: a rank that reports an error is
named with it, a worker that dies before it is ready is named too, and loading in waves
lets rank r load only after rank r - K."""

from __future__ import annotations

import threading
import time

import pytest

from fw.distributed import startup
from fw.errors import FwError


def test_a_rank_that_failed_to_load_is_named_with_its_error():
    store = startup.host_store(None, 3)
    startup.report(store, 1, None)
    startup.report(store, 2, "ConfigurationError: the model's 3 attention heads do not divide by 2")
    with pytest.raises(FwError, match="tensor-parallel rank 2 failed to start: ConfigurationError: the model's 3"):
        startup.wait_ready(store, 3, lambda: None, timeout=5)


def test_a_worker_that_died_before_it_was_ready_is_named():
    store = startup.host_store(None, 2)

    def dead() -> None:
        raise FwError("tensor-parallel rank 1 (process 4242) exited with code 1")

    with pytest.raises(FwError, match=r"rank 1 \(process 4242\) exited with code 1"):
        startup.wait_ready(store, 2, dead, timeout=5)


def test_ranks_that_never_report_time_out_with_a_hint():
    store = startup.host_store(None, 2)
    with pytest.raises(FwError, match=r"ranks \[1\] did not report ready within 0 s \(are their nodes started"):
        startup.wait_ready(store, 2, lambda: None, timeout=0.2)


def test_loading_in_waves_lets_a_rank_start_only_after_the_rank_one_wave_before():
    store = startup.host_store(None, 3)
    order: list[str] = []

    def rank(number: int) -> None:
        own = startup.join_store("127.0.0.1", store.port)  # each rank has its own connection
        startup.wait_for_turn(own, number, wave=1)
        order.append(f"start {number}")
        time.sleep(0.05)
        order.append(f"end {number}")
        startup.finished_loading(own, number)

    threads = [threading.Thread(target=rank, args=(n,)) for n in (2, 1, 0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]
