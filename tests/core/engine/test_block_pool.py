"""The block pool and KV-cache manager: reference counts, LRU eviction, prefix hits."""

from __future__ import annotations

import pytest

from fw.engine.block_pool import BlockPool
from fw.engine.kv_cache_manager import KVCacheManager
from fw.engine.request import Request
from fw.engine.sampling_params import SamplingParams
from fw.lora.manager import Adapter
from fw.lora.request import LoRARequest


def make_request(request_id: str, tokens: list[int], lora=None) -> Request:
    return Request(request_id, tokens, SamplingParams(max_tokens=8), lora=lora)


def test_new_blocks_come_from_the_free_queue_in_order():
    pool = BlockPool(4)
    blocks = pool.get_new_blocks(3)
    assert [b.block_id for b in blocks] == [0, 1, 2]
    assert pool.num_free_blocks == 1
    with pytest.raises(RuntimeError):
        pool.get_new_blocks(2)


def test_freed_blocks_keep_their_hash_until_reused():
    pool = BlockPool(2)
    (block,) = pool.get_new_blocks(1)
    pool.register(block, 123, (1, 2))
    pool.free([block])
    assert pool.lookup(123, (1, 2)) is block  # still findable while free
    assert pool.lookup(123, (9, 9)) is None  # the token check guards against collisions
    pool.get_new_blocks(2)  # reuse evicts it
    assert pool.lookup(123, (1, 2)) is None


def test_touch_revives_a_free_cached_block():
    pool = BlockPool(3)
    (block,) = pool.get_new_blocks(1)
    pool.register(block, 7, (1,))
    pool.free([block])
    assert pool.num_free_blocks == 3
    pool.touch([block])
    assert block.ref_count == 1 and pool.num_free_blocks == 2


def test_double_free_is_an_error():
    pool = BlockPool(1)
    (block,) = pool.get_new_blocks(1)
    pool.free([block])
    with pytest.raises(RuntimeError, match="KV block 0 freed more often than taken"):
        pool.free([block])


def test_prefix_hit_shares_full_blocks_and_leaves_one_token_to_compute():
    kv = KVCacheManager(num_blocks=16, block_size=4)
    first = make_request("a", list(range(10)))
    assert kv.allocate_slots(first, 10)
    first.num_computed_tokens = 10
    second = make_request("b", list(range(10)) + [99])
    blocks, cached = kv.get_computed_blocks(second)
    assert cached == 8 and [b.block_id for b in blocks] == kv.block_ids("a")[:2]
    assert kv.allocate_slots(second, 11 - cached, blocks)
    assert kv.block_ids("b")[:2] == kv.block_ids("a")[:2]
    assert all(b.ref_count == 2 for b in blocks)
    assert len(kv.block_ids("b")) == 3 and kv.pool.num_free_blocks == 16 - 3 - 1  # one new block
    # A prompt that is entirely cached still computes its last token.
    third = make_request("c", list(range(8)))
    _, cached = kv.get_computed_blocks(third)
    assert cached == 4
    assert kv.prefix_queries == 19 and kv.prefix_hits == 12


def test_prefix_cache_is_shared_only_under_the_same_adapter():
    """Blocks are keyed by the adapter's engine-unique id: another adapter, or none,
    computed other KV for the same tokens."""
    kv = KVCacheManager(num_blocks=16, block_size=4)
    first, second = (Adapter(LoRARequest("same-name", 1, "/unused"), uid) for uid in (1, 2))  # re-registered
    kv.allocate_slots(make_request("base", list(range(9))), 9)
    kv.allocate_slots(make_request("first", list(range(9)), lora=first), 9)
    assert kv.get_computed_blocks(make_request("b", list(range(9)), lora=second)) == ([], 0)
    blocks, cached = kv.get_computed_blocks(make_request("c", list(range(9)), lora=first))
    assert cached == 8 and [b.block_id for b in blocks] == kv.block_ids("first")[:2]
    blocks, cached = kv.get_computed_blocks(make_request("d", list(range(9))))
    assert cached == 8 and [b.block_id for b in blocks] == kv.block_ids("base")[:2]


def test_a_pool_without_caching_registers_nothing():
    pool = BlockPool(4, enable_caching=False)
    [block] = pool.get_new_blocks(1)
    pool.register(block, 123, (1, 2))
    assert pool.lookup(123, (1, 2)) is None and block.block_hash is None


def test_a_block_keeps_its_first_registration():
    """A block holds one content: registering it again under another key changes nothing."""
    pool = BlockPool(4)
    [block] = pool.get_new_blocks(1)
    pool.register(block, 123, (1, 2))
    pool.register(block, 456, (3, 4))
    assert pool.lookup(123, (1, 2)) is block and pool.lookup(456, (3, 4)) is None


def test_no_prefix_caching_means_no_hits_and_no_hashes():
    kv = KVCacheManager(num_blocks=8, block_size=4, enable_caching=False)
    first = make_request("a", list(range(9)))
    kv.allocate_slots(first, 9)
    kv.free(first)
    assert kv.get_computed_blocks(make_request("b", list(range(9)))) == ([], 0)
    assert not kv.pool.cached


def test_reviving_cached_blocks_fits_in_exactly_as_many_free_blocks():
    """A prefix hit on blocks sitting in the free queue takes each of them back once:
    a pool with exactly the revived blocks plus the new ones free admits the request."""
    kv = KVCacheManager(num_blocks=4, block_size=4)
    first = make_request("a", list(range(8)))
    assert kv.allocate_slots(first, 8)
    first.num_computed_tokens = 8
    kv.free(first)
    kv.allocate_slots(make_request("other", list(range(100, 104))), 4)  # 3 free: 2 cached + 1
    second = make_request("b", list(range(8)) + [99])
    blocks, cached = kv.get_computed_blocks(second)
    assert cached == 8 and kv.pool.num_free_blocks == 3
    assert kv.allocate_slots(second, 1, blocks)
    assert kv.pool.num_free_blocks == 0 and kv.block_ids("b")[:2] == [b.block_id for b in blocks]


def test_allocation_failure_changes_nothing():
    kv = KVCacheManager(num_blocks=2, block_size=4)
    request = make_request("a", list(range(12)))
    assert not kv.allocate_slots(request, 12)
    assert kv.pool.num_free_blocks == 2 and kv.block_ids("a") == []


def test_usage_is_the_share_of_blocks_in_use():
    """What fw:kv_cache_usage_perc reports."""
    pool = BlockPool(4)
    assert pool.usage() == 0.0
    blocks = pool.get_new_blocks(3)
    assert pool.usage() == 0.75
    pool.free(blocks[:1])
    assert pool.usage() == 0.5
    assert BlockPool(0).usage() == 0.0


def test_free_blocks_are_reused_least_recently_freed_first():
    pool = BlockPool(4)
    a, b, c, d = pool.get_new_blocks(4)
    pool.free([c])
    pool.free([a, d])
    assert [block.block_id for block in pool.free_queue] == [2, 0, 3]
    assert [block.block_id for block in pool.get_new_blocks(2)] == [2, 0]


def test_blocks_never_computed_are_no_longer_found():
    """A step that failed before running leaves its blocks registered but empty."""
    kv = KVCacheManager(num_blocks=8, block_size=4)
    request = make_request("a", list(range(12)))
    assert kv.allocate_slots(request, 12)
    request.num_computed_tokens = 4  # only the first block was computed
    kv.discard_uncomputed(request)
    kv.free(request)
    blocks, cached = kv.get_computed_blocks(make_request("b", list(range(13))))
    assert cached == 4 and [b.block_id for b in blocks] == [0]


def test_a_block_filled_by_generated_tokens_is_found_by_the_next_turn():
    """The block a request completes while generating is keyed by all of its tokens, so a
    follow-up prompt that repeats the conversation so far reuses it (a multi-turn chat)."""
    kv = KVCacheManager(num_blocks=8, block_size=4)
    request = make_request("a", list(range(6)))
    assert kv.allocate_slots(request, 6)  # one full block, one half full
    for token in (6, 7):
        request.append_token(token)
        request.num_computed_tokens = request.num_tokens - 1
        assert kv.allocate_slots(request, 1)
    follow_up = make_request("b", list(range(8)) + [100])
    blocks, cached = kv.get_computed_blocks(follow_up)
    assert cached == 8 and [b.block_id for b in blocks] == kv.block_ids("a")


def test_the_prefix_cache_is_reset_only_while_no_block_is_in_use():
    """POST /reset_prefix_cache reports whether it could: a block a request still holds
    keeps its hash (and so the pool's cached content), and the reset says it did nothing."""
    pool = BlockPool(2)
    (block,) = pool.get_new_blocks(1)
    pool.register(block, 5, (1,))
    assert pool.reset_prefix_cache() is False
    assert pool.lookup(5, (1,)) is block
    pool.free([block])
    assert pool.reset_prefix_cache() is True
    assert pool.lookup(5, (1,)) is None


def test_a_request_leaves_no_bookkeeping_behind():
    """A server runs millions of requests: what the manager keeps per request goes when
    the request does (its blocks and registration count when it is preempted, its block
    hashes when it is gone for good)."""
    kv = KVCacheManager(num_blocks=8, block_size=4)
    request = make_request("a", list(range(9)))
    assert kv.allocate_slots(request, 9)
    assert kv.num_registered["a"] == 2 and len(kv.req_hashes["a"]) == 2
    kv.free(request)
    assert "a" not in kv.req_blocks and "a" not in kv.req_block_ids and "a" not in kv.num_registered
    kv.forget(request)
    assert "a" not in kv.req_hashes
