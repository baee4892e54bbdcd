"""Sleep mode (``--enable-sleep-mode``): give memory back while the server idles, and
take it again on waking.

Level 1 frees the KV cache: every cache tensor keeps its shape but its storage is
resized to nothing, so every holder of the tensor (attention layers, fused kernels)
stays valid and simply sees new memory after waking; the prefix cache is emptied with
it. Level 2 frees the weights too: the async engine drops the whole engine and builds it
again from the model's files on waking (``fw.engine.async_engine``), so the same
weights answer as before. Both happen between steps with no request in flight.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import torch

from fw.engine.huge_pages import advise_and_zero, release_free_memory

if TYPE_CHECKING:
    from fw.engine.llm_engine import LLMEngine

LEVELS = (1, 2)


def release_memory() -> None:
    """After dropping tensors: collect what only cycles held (the engine froze its objects
    out of the collector after warm-up) and return the freed pages to the OS."""
    gc.unfreeze()
    gc.collect()
    release_free_memory()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def free_kv_cache(engine: "LLMEngine") -> None:
    """Level 1: the KV cache's memory goes back to the OS (the engine must be idle)."""
    assert not engine.has_unfinished_requests(), "sleep needs an idle engine"
    engine.kv.pool.reset_prefix_cache()
    for cache in engine.runner.kv_caches:
        cache.untyped_storage().resize_(0)
    release_memory()


def restore_kv_cache(engine: "LLMEngine") -> None:
    """Waking from level 1: fresh, zeroed memory for every KV cache tensor."""
    for cache in engine.runner.kv_caches:
        cache.untyped_storage().resize_(cache.numel() * cache.element_size())
        advise_and_zero(cache)
    engine.runner.bind_kv_caches(engine.runner.kv_caches)  # the fused decode step points into the new memory
    gc.collect()
    gc.freeze()  # as after warm-up: the engine's objects stay out of the cyclic collector
