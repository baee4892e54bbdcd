"""Sleep mode (``--enable-sleep-mode``): give memory back while the server idles, and
take it again on waking.

Level 1 frees the KV cache: every cache tensor keeps its shape but its storage is
resized to nothing, so every holder of the tensor (attention layers, fused kernels)
stays valid and simply sees new memory after waking; the prefix cache is emptied with
it. Level 2 frees the weights too: the async engine drops the whole engine and builds it
again from the model's files on waking, so the same weights answer as before. Both
happen between steps with no request in flight: ``Sleep`` is that state, kept by
whichever loop steps the engine (the in-thread async engine, an engine core process).
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any, Callable

import torch

from fw.engine.huge_pages import advise_and_zero, release_free_memory
from fw.engine.prefault import Prefaulter

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
    engine.prefault.stop()
    for cache in engine.runner.kv_caches:
        cache.untyped_storage().resize_(0)
    release_memory()


def restore_kv_cache(engine: "LLMEngine") -> None:
    """Waking from level 1: fresh, zeroed memory for every KV cache tensor."""
    for cache in engine.runner.kv_caches:
        cache.untyped_storage().resize_(cache.numel() * cache.element_size())
        advise_and_zero(cache)
    engine.prefault = Prefaulter(engine.runner.kv_caches).start()
    engine.runner.bind_kv_caches(engine.runner.kv_caches)  # the fused decode step points into the new memory
    gc.collect()
    gc.freeze()  # as after warm-up: the engine's objects stay out of the cyclic collector


class Sleep:
    """One engine's sleep mode: a sleep waits until no request runs (the loop calls
    ``fall_asleep`` then), waking takes the memory back. Level 2 rebuilds the engine with
    ``rebuild`` and adds back the LoRA adapters it had, those added at run time too."""

    def __init__(self, rebuild: Callable[[], "LLMEngine"] | None):
        self.rebuild = rebuild
        #: the level asleep at (0: awake)
        self.level = 0
        #: a sleep waiting for the running requests: its level, and who waits for it
        self.pending: tuple[int, Any] | None = None
        self._loras: list = []

    @property
    def sleeping(self) -> bool:
        """Asleep or falling asleep: new requests are refused."""
        return bool(self.level) or self.pending is not None

    def request(self, level: int, waiter: Any) -> bool:
        """Sleep at ``level`` once idle; False when already (falling) asleep."""
        if self.sleeping:
            return False
        self.pending = (level, waiter)
        return True

    def fall_asleep(self, engine: "LLMEngine") -> "LLMEngine | None":
        """The pending sleep, on an idle engine; the engine left (None at level 2)."""
        level, _ = self.pending
        self.pending = None
        if level == 1:
            free_kv_cache(engine)
        else:
            self._loras = engine.list_loras()
            engine.prefault.stop()
            engine = None
            release_memory()
        self.level = level
        return engine

    def wake_up(self, engine: "LLMEngine | None") -> "LLMEngine":
        """The engine awake again (level 2: a new one)."""
        if self.level == 1:
            restore_kv_cache(engine)
        elif self.level == 2:
            engine = self.rebuild()
            registered = {lora.lora_name for lora in engine.list_loras()}
            for lora in self._loras:
                if lora.lora_name not in registered:
                    engine.add_lora(lora)
        self.level = 0
        return engine
