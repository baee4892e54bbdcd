"""Which data parallel engine core a new request goes to.

The baseline is vLLM's: the engine with the smallest ``4 x waiting + running`` (from its
latest stats, plus what this client sent it since). On top, as SGLang's router does,
the prompt's prefix: while loads are balanced, a request goes to the engine that most
recently served the longest prefix of its prompt, whose prefix cache likely still holds
it. Each engine's recent prefixes are kept as chained hashes of 16-token blocks, bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from fw.engine.protocol import EngineStats

BLOCK = 16
#: prefix blocks remembered per engine
MAX_BLOCKS = 65536
#: loads differing by at most this much (absolute) or this ratio count as balanced
BALANCE_ABS, BALANCE_REL = 8, 1.5


@dataclass(eq=False)
class EngineLoad:
    rank: int
    stats: EngineStats = field(default_factory=EngineStats)
    #: requests sent since the engine's latest stats (which do not count them yet)
    sent_since_stats: int = 0
    #: prefix block hashes this engine served recently, least recent first
    prefixes: OrderedDict = field(default_factory=OrderedDict)

    @property
    def load(self) -> int:
        return 4 * (self.stats.num_waiting + self.sent_since_stats) + self.stats.num_running

    def update(self, stats: EngineStats) -> None:
        self.stats = stats
        self.sent_since_stats = 0

    def matched_blocks(self, hashes: list[int]) -> int:
        count = 0
        for block_hash in hashes:
            if block_hash not in self.prefixes:
                break
            count += 1
        return count

    def remember(self, hashes: list[int]) -> None:
        for block_hash in hashes:
            self.prefixes[block_hash] = None
            self.prefixes.move_to_end(block_hash)
        while len(self.prefixes) > MAX_BLOCKS:
            self.prefixes.popitem(last=False)


def prefix_hashes(token_ids: list[int]) -> list[int]:
    hashes: list[int] = []
    parent = None
    for start in range(0, len(token_ids) - BLOCK + 1, BLOCK):
        parent = hash((parent, tuple(token_ids[start:start + BLOCK])))
        hashes.append(parent)
    return hashes


def pick(engines: list[EngineLoad], token_ids: list[int] | None, prefix_aware: bool) -> EngineLoad:
    """The engine for a request among ``engines`` (the live ones); it is charged for it."""
    least = min(engines, key=lambda e: (e.load, e.rank))
    chosen = least
    hashes = prefix_hashes(token_ids) if prefix_aware and token_ids else []
    if hashes and len(engines) > 1:
        most = max(e.load for e in engines)
        balanced = most - least.load <= BALANCE_ABS or most <= BALANCE_REL * least.load
        if balanced:
            best = max(engines, key=lambda e: (e.matched_blocks(hashes), -e.load, -e.rank))
            if best.matched_blocks(hashes):
                chosen = best
    chosen.sent_since_stats += 1
    if hashes:
        chosen.remember(hashes)
    return chosen
