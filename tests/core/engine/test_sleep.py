"""Sleep mode: level 1 frees the KV cache, level 2 the weights too (the process's RSS
drops by that much), requests are refused while asleep, and after waking the engine
gives the same greedy tokens as before."""

from __future__ import annotations

import asyncio
import gc

import psutil
import pytest

from fw.config import EngineConfig
from fw.engine.async_engine import AsyncEngine
from fw.engine.huge_pages import release_free_memory
from fw.engine.sampling_params import SamplingParams
from fw.errors import NotSupportedError, OverloadedError

KV_BYTES = 256 * 2**20
GREEDY = SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)


@pytest.fixture(scope="module")
def engine(tiny_checkpoint_factory):
    # big enough that its memory stands out of the process's noise: ~17 MB of weights
    path = tiny_checkpoint_factory("LlamaForCausalLM", hidden_size=256, intermediate_size=1024,
                                   num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4, head_dim=32)
    engine = AsyncEngine.from_config(EngineConfig.from_options(
        model=str(path), dtype="float32", kv_cache_memory_bytes=KV_BYTES, enable_sleep_mode=True))
    yield engine
    asyncio.run(engine.shutdown())


def rss() -> int:
    """The resident set, after handing back what the allocator holds unused (so memory
    freed by earlier tests does not count as freed by sleeping)."""
    gc.collect()
    release_free_memory()
    return psutil.Process().memory_info().rss


def tokens(engine) -> list[int]:
    async def run():
        last = None
        async for out in engine.generate("Hello there, how", GREEDY, "r"):
            last = out
        return last.outputs[0].token_ids

    return asyncio.run(run())


def weight_bytes(engine) -> int:
    """Parameters, buffers and the packed weights the layers run from."""
    model = engine.engine.runner.model
    packed = sum(m.packed.nbytes for m in model.modules() if getattr(m, "packed", None) is not None)
    return packed + sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def use_whole_cache(engine) -> None:
    """Write every page of the (idle) engine's KV cache."""
    for cache in engine.engine.runner.kv_caches:
        cache.zero_()


def test_sleep_frees_memory_and_waking_answers_the_same(engine):
    before = tokens(engine)
    kv = sum(c.numel() * c.element_size() for c in engine.engine.runner.kv_caches)
    weights = weight_bytes(engine)
    assert kv >= 0.9 * KV_BYTES and weights > 15 * 2**20

    # The cache's pages cost memory once written or faulted in by the engine's prefault
    # thread: write them all, as a full server would have.
    use_whole_cache(engine)
    awake = rss()
    asyncio.run(engine.sleep(1))
    asleep = rss()
    assert engine.is_sleeping() and awake - asleep >= 0.9 * kv
    assert not engine.engine.prefault.alive()  # stopped before the memory went
    with pytest.raises(OverloadedError, match="asleep"):
        tokens(engine)
    asyncio.run(engine.wake_up())
    assert not engine.is_sleeping()
    assert sum(c.untyped_storage().nbytes() for c in engine.engine.runner.kv_caches) == kv
    assert not any(c.any() for c in engine.engine.runner.kv_caches)  # fresh and zeroed
    assert engine.engine.prefault.join(60)  # it faults the new pages in, unasked
    assert rss() - asleep >= 0.9 * kv  # the cache is back
    assert tokens(engine) == before

    use_whole_cache(engine)
    awake = rss()
    asyncio.run(engine.sleep(2))
    asleep = rss()
    assert awake - asleep >= 0.9 * (kv + weights)
    asyncio.run(engine.sleep(2))  # already asleep: nothing to do
    asyncio.run(engine.wake_up())
    assert tokens(engine) == before


def test_bad_levels_and_sleep_mode_off(engine, tiny_llama):
    with pytest.raises(ValueError, match="must be 1 or 2"):
        asyncio.run(engine.sleep(3))
    other = AsyncEngine.from_config(EngineConfig.from_options(model=str(tiny_llama), dtype="float32",
                                                              kv_cache_memory_bytes=2**22))
    try:
        with pytest.raises(NotSupportedError, match="--enable-sleep-mode"):
            asyncio.run(other.sleep(1))
    finally:
        asyncio.run(other.shutdown())
