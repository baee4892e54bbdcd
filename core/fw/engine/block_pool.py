"""The pool of KV-cache blocks: reference counts, a free queue in LRU order, and the map
from content hash to cached block (the prefix cache).

A block whose reference count drops to zero goes to the back of the free queue but
keeps its hash: until the pool hands it out again it can still be hit by a request with
the same prefix. New blocks come from the front, so the least recently freed cached
blocks are evicted first.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class KVBlock:
    block_id: int
    ref_count: int = 0
    #: content hash when the block is full and registered in the prefix cache
    block_hash: int | None = None
    #: the tokens the hash covers (a hit is confirmed against them)
    token_ids: tuple[int, ...] = ()
    prev: "KVBlock | None" = field(default=None, repr=False)
    next: "KVBlock | None" = field(default=None, repr=False)


class FreeBlockQueue:
    """Doubly linked list of free blocks: O(1) pop from the front, append, and removal of a
    cached block from the middle when a prefix hit revives it."""

    def __init__(self, blocks: list[KVBlock]):
        self._head = KVBlock(-1)
        self._tail = KVBlock(-2)
        self._head.next, self._tail.prev = self._tail, self._head
        self.size = 0
        for block in blocks:
            self.append(block)

    def append(self, block: KVBlock) -> None:
        last = self._tail.prev
        last.next = block
        block.prev, block.next = last, self._tail
        self._tail.prev = block
        self.size += 1

    def remove(self, block: KVBlock) -> None:
        block.prev.next = block.next
        block.next.prev = block.prev
        block.prev = block.next = None
        self.size -= 1

    def popleft(self) -> KVBlock:
        if self.size == 0:
            raise RuntimeError("no free KV blocks")
        block = self._head.next
        self.remove(block)
        return block

    def __iter__(self):
        node = self._head.next
        while node is not self._tail:
            yield node
            node = node.next


class BlockPool:
    def __init__(self, num_blocks: int, enable_caching: bool = True):
        self.num_blocks = num_blocks
        self.enable_caching = enable_caching
        self.blocks = [KVBlock(i) for i in range(num_blocks)]
        self.free_queue = FreeBlockQueue(self.blocks)
        self.cached: dict[int, KVBlock] = {}

    @property
    def num_free_blocks(self) -> int:
        return self.free_queue.size

    def usage(self) -> float:
        return 1.0 - self.num_free_blocks / self.num_blocks if self.num_blocks else 0.0

    def get_new_blocks(self, count: int) -> list[KVBlock]:
        if count > self.free_queue.size:
            raise RuntimeError(f"asked for {count} KV blocks with {self.free_queue.size} free")
        blocks = []
        for _ in range(count):
            block = self.free_queue.popleft()
            self._evict(block)
            block.ref_count = 1
            blocks.append(block)
        return blocks

    def _evict(self, block: KVBlock) -> None:
        if block.block_hash is not None:
            if self.cached.get(block.block_hash) is block:
                del self.cached[block.block_hash]
            block.block_hash = None
            block.token_ids = ()

    def lookup(self, block_hash: int, token_ids: tuple[int, ...]) -> KVBlock | None:
        """The cached block with this hash, if its tokens match."""
        block = self.cached.get(block_hash)
        if block is None or block.token_ids != token_ids:
            return None
        return block

    def touch(self, blocks: list[KVBlock]) -> None:
        """Take a reference to cached blocks (reviving free ones)."""
        for block in blocks:
            if block.ref_count == 0:
                self.free_queue.remove(block)
            block.ref_count += 1

    def register(self, block: KVBlock, block_hash: int, token_ids: tuple[int, ...]) -> None:
        """Make a full block findable by its content hash."""
        if not self.enable_caching or block.block_hash is not None:
            return
        if block_hash in self.cached:
            return  # another block already holds this content; keep the first
        block.block_hash = block_hash
        block.token_ids = token_ids
        self.cached[block_hash] = block

    def uncache(self, blocks: list[KVBlock]) -> None:
        """Make blocks unfindable by their hash: registered for content that was never
        computed (a step that did not run for their request)."""
        for block in blocks:
            self._evict(block)

    def free(self, blocks: list[KVBlock]) -> None:
        """Drop one reference from each block; pass them tail-first so a request's last
        blocks are evicted before its shared prefix."""
        for block in blocks:
            block.ref_count -= 1
            if block.ref_count < 0:
                raise RuntimeError(f"KV block {block.block_id} freed more often than taken")
            if block.ref_count == 0:
                if not self.enable_caching:
                    self._evict(block)
                self.free_queue.append(block)

    def reset_prefix_cache(self) -> bool:
        """Forget every cached hash (only when no block is in use)."""
        if self.num_free_blocks != self.num_blocks:
            return False
        for block in self.blocks:
            self._evict(block)
        return True
