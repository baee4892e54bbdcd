"""The KV cache's fresh memory, faulted in ahead of the steps: every block of every layer,
first blocks first, nothing a step wrote changed, and the thread gone once stopped."""

from __future__ import annotations

import ctypes
import mmap
import threading
import time

import pytest
import torch

from fw.engine import huge_pages
from fw.engine.prefault import MADV_POPULATE_WRITE, Prefaulter, block_regions


def resident_share(tensor: torch.Tensor) -> float:
    """The share of ``tensor``'s whole pages that are in memory (mincore)."""
    page = mmap.PAGESIZE
    start = -(-tensor.data_ptr() // page) * page
    pages = (tensor.data_ptr() + tensor.nbytes - start) // page
    vector = (ctypes.c_ubyte * pages)()
    assert huge_pages.libc_or_none().mincore(ctypes.c_void_p(start), ctypes.c_size_t(pages * page), vector) == 0
    return sum(v & 1 for v in vector) / pages


def kv_cache(blocks: int, block_bytes: int) -> torch.Tensor:
    """A [2, blocks, block_bytes] cache as ``allocate_kv_caches`` makes them."""
    return huge_pages.zeros(2, blocks, block_bytes, dtype=torch.uint8)


def test_regions_go_in_the_pools_order_over_every_layer():
    # The pool hands out block 0 first: each ~2 MiB run of blocks is faulted in for every
    # layer's keys and values before the next run, and the regions cover the caches whole.
    layers = [torch.empty(2, 1000, 8192, dtype=torch.uint8) for _ in range(3)]
    layers.append(torch.empty(2, 300, 8192, dtype=torch.uint8))  # a cache with fewer blocks is covered too
    regions = block_regions(layers)
    run = huge_pages.HUGE_PAGE // 8192  # blocks per run
    first = [(layer.data_ptr() + part * layer.shape[1] * 8192, run * 8192) for layer in layers for part in (0, 1)]
    assert regions[:8] == first
    covered = sorted(regions)
    for layer in layers:
        spans = [(a, n) for a, n in covered if layer.data_ptr() <= a < layer.data_ptr() + layer.nbytes]
        assert spans[0][0] == layer.data_ptr()
        assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))  # no gap, no overlap
        assert spans[-1][0] + spans[-1][1] == layer.data_ptr() + layer.nbytes


def test_device_and_odd_tensors_have_no_regions():
    assert block_regions([torch.empty(3, 4, 5)]) == []
    assert block_regions([]) == []


@pytest.mark.skipif(huge_pages.libc_or_none() is None, reason="Linux only")
def test_pages_become_resident_and_written_values_stay():
    cache = kv_cache(512, 128 << 10)  # 128 MiB, untouched
    cache[1, 300, 5] = 7  # a step wrote here before the prefault got there
    assert resident_share(cache) < 0.1
    assert Prefaulter([cache]).run()
    assert resident_share(cache) == 1.0
    assert cache[1, 300, 5] == 7
    cache[1, 300, 5] = 0
    assert not cache.any()


def test_the_thread_stops_when_told_and_advises_nothing_after(monkeypatch):
    calls, first = [], threading.Event()

    class SlowLibc:
        def madvise(self, start, length, advice):
            calls.append(advice)
            first.set()
            time.sleep(0.01)
            return 0

    monkeypatch.setattr(huge_pages, "libc_or_none", lambda: SlowLibc())
    prefault = Prefaulter([torch.empty(2, 4096, 4096, dtype=torch.uint8)]).start()
    assert prefault.alive() and first.wait(30)
    prefault.stop()
    assert not prefault.alive()
    count = len(calls)
    assert 0 < count < len(prefault.regions) and set(calls) == {MADV_POPULATE_WRITE}
    time.sleep(0.05)
    assert len(calls) == count


@pytest.mark.skipif(huge_pages.libc_or_none() is None, reason="Linux only")
def test_an_engine_faults_its_fresh_cache_in_unasked(tiny_llama):
    from fw.config import EngineConfig
    from fw.engine.llm_engine import LLMEngine

    engine = LLMEngine.from_config(EngineConfig.from_options(model=str(tiny_llama), dtype="float32",
                                                             kv_cache_memory_bytes=64 << 20))
    try:
        assert engine.prefault.join(60)
        assert all(resident_share(cache) == 1.0 for cache in engine.runner.kv_caches)
    finally:
        engine.shutdown()
    assert not engine.prefault.alive()
