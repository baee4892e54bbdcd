"""The LoRA manager: which adapters exist, which are loaded, which sit in slots.

Three tiers, each bounded by its option:

* registered adapters (``--lora-modules``, ``add``): a name and a folder, unbounded;
* loaded adapters: weights read and checked, kept for the ``--max-cpu-loras`` most
  recently used; a dropped one is read from disk again when a request needs it;
* active adapters: copied into one of ``--max-loras`` slots of the LoRA layers. The
  scheduler never runs requests for more adapters than there are slots, so each step
  can place all of its adapters, evicting the least recently used idle slot.

Requests hold their ``Adapter`` (``Request.lora``) until they finish, so ``remove``
takes the name away at once while in-flight requests finish with the adapter; its
memory is released once none is left (``reap``).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from fw.config.lora import LoRAConfig
from fw.errors import ConfigurationError, InvalidParameterError, LoRAAdapterError, ModelNotFoundError
from fw.layers.lora import LoRABatch, LoRAStep
from fw.lora.peft import read_peft_adapter
from fw.lora.request import LoRARequest
from fw.lora.targets import LoRAWeights, attach_lora_layers, find_targets, fit_adapter

logger = logging.getLogger("fw.lora")

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(eq=False)
class Adapter:
    """A registered adapter. Compared by identity: a re-registered name is a new adapter."""

    request: LoRARequest
    #: unique for the engine's lifetime and never reused: the prefix-cache key, so KV
    #: blocks computed under one adapter are never served to another
    uid: int

    @property
    def name(self) -> str:
        return self.request.lora_name


class LoRAManager:
    def __init__(self, config: LoRAConfig, model: nn.Module, model_dtype: torch.dtype, device: torch.device):
        self.config = config
        self.max_rank = config.max_lora_rank
        self.dtype = model_dtype if config.lora_dtype == "auto" else _DTYPES[config.lora_dtype]
        self.device = device
        self.step = LoRAStep()
        self.targets = find_targets(model)
        if not self.targets:
            raise ConfigurationError(f"--enable-lora: {type(model).__name__} has no linear layer LoRA can adapt")
        self.layers = attach_lora_layers(model, self.targets, max_loras=config.max_loras, max_rank=self.max_rank,
                                         dtype=self.dtype, device=device, step=self.step)
        self.adapters: dict[str, Adapter] = {}
        #: removed adapters that in-flight requests still use
        self.retiring: list[Adapter] = []
        self.loaded: OrderedDict[int, LoRAWeights] = OrderedDict()
        #: slot -> adapter in it, least recently used first
        self.slots: OrderedDict[int, Adapter] = OrderedDict()
        self._uids = itertools.count(1)

    # -- registry ----------------------------------------------------------------------

    def add(self, request: LoRARequest) -> bool:
        """Register and load ``request`` (errors surface now, not mid-step). False if an
        adapter of that name is already registered from the same folder."""
        existing = self.adapters.get(request.lora_name)
        if existing is not None:
            if _same_path(existing.request.lora_path, request.lora_path):
                return False
            raise LoRAAdapterError(request.lora_name, request.lora_path,
                                   "an adapter of that name is already loaded from another folder; unload it first")
        adapter = Adapter(request, next(self._uids))
        self._weights(adapter)
        self.adapters[request.lora_name] = adapter
        logger.info("LoRA adapter %r registered from %s (rank %d)", adapter.name, request.lora_path,
                    self.loaded[adapter.uid].rank)
        return True

    def remove(self, name: str, in_use: Iterable[Adapter]) -> bool:
        """Unregister ``name`` now; False if no such adapter. Requests already holding it
        finish with it; its memory goes when the last of them does."""
        adapter = self.adapters.pop(name, None)
        if adapter is None:
            return False
        self.retiring.append(adapter)
        self.reap(in_use)
        logger.info("LoRA adapter %r unregistered", name)
        return True

    def reap(self, in_use: Iterable[Adapter]) -> None:
        """Release removed adapters that no request uses any more."""
        if not self.retiring:
            return
        busy = set(in_use)
        for adapter in [a for a in self.retiring if a not in busy]:
            self.retiring.remove(adapter)
            self.loaded.pop(adapter.uid, None)
            slot = next((s for s, a in self.slots.items() if a is adapter), None)
            if slot is not None:
                self._clear(slot)

    def registered(self) -> list[LoRARequest]:
        return [a.request for a in self.adapters.values()]

    def resolve(self, request: LoRARequest) -> Adapter:
        """The registered adapter a request asks for (by name)."""
        adapter = self.adapters.get(request.lora_name)
        if adapter is None:
            known = ", ".join(self.adapters) or "none"
            raise ModelNotFoundError(f"LoRA adapter {request.lora_name!r} is not loaded (loaded: {known})",
                                     param="model")
        if request.lora_path and not _same_path(adapter.request.lora_path, request.lora_path):
            raise InvalidParameterError(
                "lora_request", f"adapter {request.lora_name!r} is loaded from {adapter.request.lora_path}, "
                                f"not {request.lora_path}")
        return adapter

    # -- loaded weights ----------------------------------------------------------------

    def _weights(self, adapter: Adapter) -> LoRAWeights:
        weights = self.loaded.get(adapter.uid)
        if weights is not None:
            self.loaded.move_to_end(adapter.uid)
            return weights
        peft = read_peft_adapter(adapter.name, adapter.request.lora_path)
        weights = fit_adapter(peft, self.targets, self.layers, max_rank=self.max_rank, dtype=self.dtype)
        self.loaded[adapter.uid] = weights
        while len(self.loaded) > self.config.cpu_capacity:
            self.loaded.popitem(last=False)
        return weights

    def load_for_step(self, adapters: Iterable[Adapter]) -> dict[Adapter, LoRAAdapterError]:
        """Read back from disk the adapters a step needs that were dropped from memory,
        before the step runs. Their folders may have changed or vanished since
        registration; those adapters are returned with the reason, so the engine fails
        only their requests instead of the whole step."""
        in_slots = set(self.slots.values())
        failed: dict[Adapter, LoRAAdapterError] = {}
        for adapter in adapters:
            if adapter in in_slots:
                continue
            try:
                self._weights(adapter)
            except LoRAAdapterError as exc:
                failed[adapter] = LoRAAdapterError(
                    adapter.name, adapter.request.lora_path,
                    f"{exc.reason}; the adapter had been dropped from memory (--max-cpu-loras "
                    f"{self.config.cpu_capacity}) and reading it again failed")
        return failed

    # -- slots and the per-step mapping ------------------------------------------------

    def prepare_step(self, runs: list[tuple[Adapter | None, int]]) -> None:
        """Place this step's adapters in slots and publish which rows use which slot.
        ``runs`` are ``(adapter or None, tokens)`` per scheduled request, in batch order."""
        wanted = list(dict.fromkeys(a for a, _ in runs if a is not None))
        if not wanted:
            self.step.batch = LoRABatch()
            return
        if len(wanted) > self.config.max_loras:
            raise RuntimeError(f"a step has {len(wanted)} adapters but --max-loras is {self.config.max_loras}")
        slot_of = {adapter: self._activate(adapter, wanted) for adapter in wanted}
        batch = LoRABatch.from_runs([(slot_of[a] if a is not None else -1, n) for a, n in runs], self.device)
        batch.slot_adapters = {slot: (a.uid, a.name, a.request.lora_path) for a, slot in slot_of.items()}
        self.step.batch = batch

    def mirror(self, slot_adapters: dict[int, tuple[int, str, str]]) -> None:
        """Hold in each slot the adapter rank 0 holds there (``LoRABatch.slot_adapters``):
        a tensor-parallel worker's manager follows rank 0's instead of choosing slots."""
        for slot, (uid, name, path) in slot_adapters.items():
            held = self.slots.get(slot)
            if held is None or held.uid != uid:
                self._fill(slot, Adapter(LoRARequest(name, 1, path), uid))

    def _activate(self, adapter: Adapter, keep: list[Adapter]) -> int:
        for slot, holder in self.slots.items():
            if holder is adapter:
                self.slots.move_to_end(slot)
                return slot
        free = [s for s in range(self.config.max_loras) if s not in self.slots]
        slot = free[0] if free else next(s for s, a in self.slots.items() if a not in keep)
        self._fill(slot, adapter)
        return slot

    def _fill(self, slot: int, adapter: Adapter) -> None:
        self._clear(slot)
        weights = self._weights(adapter)
        for module, shards in weights.layers.items():
            for shard, (lora_a, lora_b) in shards.items():
                self.layers[module].set_slot(slot, shard, lora_a.to(self.device), lora_b.to(self.device))
        self.slots[slot] = adapter

    def _clear(self, slot: int) -> None:
        for layer in self.layers.values():
            if slot in layer.filled:
                layer.clear_slot(slot)
        self.slots.pop(slot, None)


def _same_path(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
