"""Starting a tensor-parallel group: the store every rank meets at, loading in waves, and
rank 0's wait until every rank has loaded its shard.

Rank 0 hosts a ``TCPStore`` (at ``--master-addr``/``--master-port`` on node 0). Each rank
loads the whole checkpoint, packs it and cuts its shard, then writes ``ready/<rank>``
(empty, or the error that stopped it) and joins the process groups. Rank 0 polls those
keys together with the workers' liveness, so a worker that fails or dies while loading
becomes an error naming its rank at once, instead of a collective that waits forever.
With ``--max-parallel-loading-workers K`` rank ``r`` starts loading only once rank
``r - K`` has finished, which bounds the peak memory of a machine's ranks.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Callable

import torch.distributed as dist

from fw.errors import FwError

#: how long ranks wait for each other while starting (a worker node may start later)
STARTUP_TIMEOUT = 600.0


def host_store(port: int | None, world_size: int) -> dist.TCPStore:
    """Rank 0's store, on ``port`` (a free one when None) of every interface."""
    return dist.TCPStore("0.0.0.0", port or 0, world_size, is_master=True,
                         timeout=timedelta(seconds=STARTUP_TIMEOUT), wait_for_workers=False)


def join_store(address: str, port: int) -> dist.TCPStore:
    """A worker's connection to rank 0's store (retried until it is up)."""
    return dist.TCPStore(address, port, is_master=False, timeout=timedelta(seconds=STARTUP_TIMEOUT))


def wait_for_turn(store: dist.Store, rank: int, wave: int | None) -> None:
    """Block until rank ``rank - wave`` has finished loading (``--max-parallel-loading-workers``)."""
    if wave is not None and rank >= wave:
        store.wait([f"loaded/{rank - wave}"])


def finished_loading(store: dist.Store, rank: int) -> None:
    store.set(f"loaded/{rank}", "1")


def report(store: dist.Store, rank: int, error: str | None) -> None:
    """A worker's result of loading: ready (no error) or the reason it stopped."""
    store.set(f"ready/{rank}", error or "")


def wait_ready(store: dist.Store, world_size: int, check_alive: Callable[[], None],
               timeout: float = STARTUP_TIMEOUT) -> None:
    """Rank 0: return once every worker reported ready; raise with the first failure."""
    pending = set(range(1, world_size))
    deadline = time.monotonic() + timeout
    while pending:
        for rank in sorted(pending):
            if store.check([f"ready/{rank}"]):
                _raise_if_failed(store, rank)
                pending.discard(rank)
        try:
            check_alive()
        except FwError:
            for rank in sorted(pending):  # a worker that reported its error, then exited
                if store.check([f"ready/{rank}"]):
                    _raise_if_failed(store, rank)
            raise
        if pending and time.monotonic() > deadline:
            raise FwError(f"tensor-parallel ranks {sorted(pending)} did not report ready within {timeout:.0f} s "
                          "(are their nodes started, with the same --master-addr/--master-port?)")
        if pending:
            time.sleep(0.05)


def _raise_if_failed(store: dist.Store, rank: int) -> None:
    error = store.get(f"ready/{rank}").decode()
    if error:
        raise FwError(f"tensor-parallel rank {rank} failed to start: {error}")
