"""Per-request block tables over the block pool, and the prefix cache.

A request's full blocks are registered under a chained hash (parent hash, the block's
tokens, and an extra key such as the LoRA adapter), so a later request whose prompt
starts with the same tokens under the same adapter reuses them instead of recomputing.
"""

from __future__ import annotations

import hashlib
import pickle

from fw.engine.block_pool import BlockPool, KVBlock
from fw.engine.request import Request


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _sha256(key: tuple) -> bytes:
    """--prefix-caching-hash-algo sha256: collision-resistant block keys (vLLM's pickle form)."""
    return hashlib.sha256(pickle.dumps(key, protocol=pickle.HIGHEST_PROTOCOL)).digest()


HASHES = {"builtin": hash, "sha256": _sha256}


class KVCacheManager:
    def __init__(self, num_blocks: int, block_size: int, enable_caching: bool = True, *,
                 hash_algo: str = "builtin"):
        self.block_size = block_size
        self._hash = HASHES[hash_algo]
        self.enable_caching = enable_caching
        self.pool = BlockPool(num_blocks, enable_caching)
        self.req_blocks: dict[str, list[KVBlock]] = {}
        #: the ids of ``req_blocks``, kept beside them: the runner reads them every step, and
        #: a request keeps the same list object while it holds its blocks (the runner's
        #: incremental block tables tell a request's blocks from its next ones by it)
        self.req_block_ids: dict[str, list[int]] = {}
        #: chained hashes of each request's full blocks, computed once and extended
        self.req_hashes: dict[str, list] = {}
        #: how many of the request's blocks are registered in the prefix cache
        self.num_registered: dict[str, int] = {}
        self.prefix_queries = 0
        self.prefix_hits = 0

    @property
    def num_blocks(self) -> int:
        return self.pool.num_blocks

    def usage(self) -> float:
        return self.pool.usage()

    # -- hashing -----------------------------------------------------------------------

    def _extra_key(self, request: Request) -> object:
        # An engine-unique adapter id (fw.lora.manager.Adapter.uid), never reused: an
        # adapter unloaded and another loaded under the same name or lora_int_id never
        # hits the first one's blocks.
        return None if request.lora is None else ("lora", request.lora.uid)

    def _block_hashes(self, request: Request, num_full_blocks: int) -> list[int | bytes]:
        hashes = self.req_hashes.setdefault(request.request_id, [])
        tokens, size = request.all_token_ids, self.block_size
        extra = self._extra_key(request)
        while len(hashes) < num_full_blocks:
            i = len(hashes)
            parent = hashes[-1] if hashes else None
            hashes.append(self._hash((parent, extra, tuple(tokens[i * size:(i + 1) * size]))))
        return hashes

    # -- prefix cache lookup -----------------------------------------------------------

    def get_computed_blocks(self, request: Request) -> tuple[list[KVBlock], int]:
        """Cached blocks holding a prefix of the request's tokens, and how many tokens
        they cover. At least one token is always left to compute, so the request gets
        logits to sample from."""
        if not self.enable_caching or request.skip_prefix_cache:
            return [], 0
        max_blocks = (request.num_tokens - 1) // self.block_size
        hashes = self._block_hashes(request, max_blocks)
        hits: list[KVBlock] = []
        tokens, size = request.all_token_ids, self.block_size
        for i, block_hash in enumerate(hashes[:max_blocks]):
            block = self.pool.lookup(block_hash, tuple(tokens[i * size:(i + 1) * size]))
            if block is None:
                break
            hits.append(block)
        self.prefix_queries += request.num_tokens
        self.prefix_hits += len(hits) * size
        return hits, len(hits) * size

    # -- allocation --------------------------------------------------------------------

    def allocate_slots(self, request: Request, num_new_tokens: int,
                       computed_blocks: list[KVBlock] | None = None) -> bool:
        """Make room for ``num_new_tokens`` more tokens (after ``computed_blocks`` from the
        prefix cache, for a request being scheduled from the waiting queue). Returns
        False, changing nothing, if the pool is short."""
        computed_blocks = computed_blocks or []
        blocks = self.req_blocks.setdefault(request.request_id, [])
        num_computed = request.num_computed_tokens + len(computed_blocks) * self.block_size
        needed = cdiv(num_computed + num_new_tokens, self.block_size) - len(blocks) - len(computed_blocks)
        # Reviving cached blocks that sit in the free queue uses up free blocks too.
        revived = sum(1 for b in computed_blocks if b.ref_count == 0)
        if needed + revived > self.pool.num_free_blocks:
            return False
        ids = self.req_block_ids.setdefault(request.request_id, [])
        if computed_blocks:
            self.pool.touch(computed_blocks)
            blocks.extend(computed_blocks)
            ids.extend(b.block_id for b in computed_blocks)
            self.num_registered[request.request_id] = len(blocks)
        if needed > 0:
            new = self.pool.get_new_blocks(needed)
            blocks.extend(new)
            ids.extend(b.block_id for b in new)
        self._register_full_blocks(request, num_computed + num_new_tokens)
        return True

    def _register_full_blocks(self, request: Request, num_tokens: int) -> None:
        if not self.enable_caching:
            return
        num_full = min(num_tokens, request.num_tokens) // self.block_size
        done = self.num_registered.get(request.request_id, 0)
        if num_full <= done:
            return
        hashes = self._block_hashes(request, num_full)
        blocks, tokens, size = self.req_blocks[request.request_id], request.all_token_ids, self.block_size
        for i in range(done, num_full):
            self.pool.register(blocks[i], hashes[i], tuple(tokens[i * size:(i + 1) * size]))
        self.num_registered[request.request_id] = num_full

    def block_ids(self, request_id: str) -> list[int]:
        """The request's block ids, in order: the manager's own list (read, never change it)."""
        ids = self.req_block_ids.get(request_id)
        return [] if ids is None else ids

    def free(self, request: Request) -> None:
        """Release every block of the request (preemption, finish or abort)."""
        blocks = self.req_blocks.pop(request.request_id, [])
        self.req_block_ids.pop(request.request_id, None)
        self.pool.free(list(reversed(blocks)))
        self.num_registered.pop(request.request_id, None)

    def discard_uncomputed(self, request: Request) -> None:
        """Unregister the blocks allocated for tokens the request was scheduled for but
        never computed (it failed before its step ran); they are registered at
        allocation, and a later prefix hit must not read them."""
        first = request.num_computed_tokens // self.block_size
        self.pool.uncache(self.req_blocks.get(request.request_id, [])[first:])

    def forget(self, request: Request) -> None:
        """Drop per-request bookkeeping once the request is gone for good."""
        self.free(request)
        self.req_hashes.pop(request.request_id, None)
