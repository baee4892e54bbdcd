"""The engine's LoRA plumbing in one place: the registry operations its clients call, the
adapter a request names, and releasing removed adapters once no live request holds them.
Loading a step's adapters is the runner's; their slots and weights are ``fw.lora``'s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable

from fw.errors import NotSupportedError
from fw.lora.request import LoRARequest

if TYPE_CHECKING:
    from fw.engine.request import Request
    from fw.lora.manager import Adapter, LoRAManager


class EngineLoRAs:
    def __init__(self, manager: "LoRAManager | None", live_requests: Callable[[], Iterable["Request"]]):
        self.manager = manager
        self._live_requests = live_requests

    def _manager(self) -> "LoRAManager":
        if self.manager is None:
            raise NotSupportedError("LoRA is not enabled; start the engine with --enable-lora",
                                    param="lora_request")
        return self.manager

    def _in_use(self) -> list["Adapter"]:
        return [r.lora for r in self._live_requests() if r.lora is not None]

    def add(self, lora_request: LoRARequest) -> bool:
        """Register and load an adapter; its errors (missing files, rank, targets) raise
        ``LoRAAdapterError`` now. False if the name is already loaded from that folder."""
        self.reap()
        return self._manager().add(lora_request)

    def remove(self, lora_name: str) -> bool:
        """Unregister an adapter at once (new requests for it fail); requests already
        running with it finish first, then its memory is released. False if unknown."""
        return self._manager().remove(lora_name, self._in_use())

    def registered(self) -> list[LoRARequest]:
        """The registered adapters, in registration order."""
        return self.manager.registered() if self.manager is not None else []

    def resolve(self, lora_request: LoRARequest | None) -> "Adapter | None":
        """The adapter a request names (None: the base model)."""
        return None if lora_request is None else self._manager().resolve(lora_request)

    def reap(self) -> None:
        """Release removed adapters no live request holds any more (between steps)."""
        if self.manager is not None and self.manager.retiring:
            self.manager.reap(self._in_use())
