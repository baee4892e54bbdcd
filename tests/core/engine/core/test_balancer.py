"""Data parallel routing: the shortest queue (vLLM's 4 x waiting + running), and while
queues are balanced, the rank that served the longest prefix of the prompt."""

from __future__ import annotations

from fw.engine.core import balancer
from fw.engine.core.balancer import EngineLoad, pick
from fw.engine.protocol import EngineStats

SYSTEM = list(range(1000, 1064))  # 4 blocks of a shared system prompt


def engines(*loads: tuple[int, int]) -> list[EngineLoad]:
    return [EngineLoad(rank, EngineStats(num_waiting=waiting, num_running=running))
            for rank, (waiting, running) in enumerate(loads)]


def test_the_shortest_queue_weighs_waiting_requests_four_times():
    a, b = engines((1, 0), (0, 3))  # loads 4 and 3
    assert pick([a, b], None, prefix_aware=False) is b
    assert b.sent_since_stats == 1 and b.load == 7  # charged for it until its next stats


def test_a_shared_prefix_goes_back_to_the_rank_that_served_it():
    a, b = engines((0, 0), (0, 0))
    first = pick([a, b], SYSTEM + [1, 2, 3], prefix_aware=True)
    other = b if first is a else a
    other.update(EngineStats(num_running=1))  # the other one is now the less loaded
    first.update(EngineStats(num_running=2))
    assert pick([a, b], SYSTEM + [7, 8, 9], prefix_aware=True) is first
    assert pick([a, b], SYSTEM + [7, 8, 9], prefix_aware=False) is other


def test_unbalanced_queues_win_over_the_prefix():
    a, b = engines((0, 0), (0, 0))
    first = pick([a, b], SYSTEM, prefix_aware=True)
    first.update(EngineStats(num_waiting=10, num_running=8))  # load 48 against 0
    assert pick([a, b], SYSTEM, prefix_aware=True) is not first


def test_a_different_earlier_block_is_a_different_prefix():
    a, b = engines((0, 0), (0, 0))
    served = pick([a, b], SYSTEM, prefix_aware=True)
    changed = [7] + SYSTEM[1:]  # same later blocks, a different first one
    assert served.matched_blocks(balancer.prefix_hashes(changed)) == 0
    assert served.matched_blocks(balancer.prefix_hashes(SYSTEM)) == len(SYSTEM) // balancer.BLOCK
