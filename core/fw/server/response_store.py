"""The Responses API's store: responses kept for ``previous_response_id`` and
``GET /v1/responses/{id}``, bounded in entries, bytes and age.

vLLM's store grows without bound; a server that runs for weeks must not. Each entry
keeps the response object and the conversation it ends (the history before it, its
input items and its output items, function calls included), so a continuation never
depends on an older entry that may have been evicted. Least recently used entries go
first when a bound is reached; an entry older than the TTL is gone when next looked up.
An entry larger than the byte bound on its own is not kept.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class StoredResponse:
    #: the response object as the API returns it (JSON-able)
    response: dict[str, Any]
    #: the whole conversation up to and including this response's output items
    history: list[dict[str, Any]]
    size: int = 0
    expires: float = 0.0

    def measure(self) -> int:
        self.size = len(json.dumps(self.response)) + len(json.dumps(self.history))
        return self.size


@dataclass
class ResponseStore:
    max_entries: int
    max_bytes: int
    ttl: float
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[str, StoredResponse] = field(default_factory=OrderedDict)
    bytes: int = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, response_id: str) -> StoredResponse | None:
        """The entry (now the most recently used), or None if unknown or expired."""
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self.delete(response_id)
            return None
        self._entries.move_to_end(response_id)
        return entry

    def put(self, response_id: str, entry: StoredResponse) -> bool:
        """Keep (or replace) an entry; False if it is too large to keep at all."""
        self.delete(response_id)
        if not self.enabled or entry.measure() > self.max_bytes:
            return False
        entry.expires = self.clock() + self.ttl
        self._entries[response_id] = entry
        self.bytes += entry.size
        self._evict()
        return True

    def delete(self, response_id: str) -> bool:
        entry = self._entries.pop(response_id, None)
        if entry is None:
            return False
        self.bytes -= entry.size
        return True

    def _evict(self) -> None:
        now = self.clock()
        for key in [k for k, e in self._entries.items() if e.expires <= now]:
            self.delete(key)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self.delete(next(iter(self._entries)))
