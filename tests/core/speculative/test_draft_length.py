"""fw.speculative.draft_length: each request's guess length follows its guesses' record,
shrinks to nothing when they keep failing, tries again later, grows to the room when they
are right, shortens in bigger batches, and the lengths chosen are the best the cost model
allows (checked against trying every combination)."""

from __future__ import annotations

import itertools
import random

import pytest
from fw.speculative.draft_length import DECAY, ROW_COST, DraftLengths


def _rate(lengths, chances, batch, row_cost=ROW_COST) -> float:
    """Expected tokens per unit of time of a step: the quantity the lengths maximise."""
    gained = sum(sum(c[:k]) for c, k in zip(chances, lengths))
    return (batch + gained) / (1 + row_cost * (batch - 1) + row_cost * sum(lengths))


def test_failing_guesses_stop_and_are_tried_again_later():
    lengths = DraftLengths()
    assert lengths.choose(["r"], [5], 1)[0] >= 1  # no record yet: worth a try
    failures = 0
    while (k := lengths.choose(["r"], [5], 1)[0]) > 0:
        lengths.observe("r", k, 0)
        failures += 1
        assert failures < 30
    # always wrong from then on: one-token probes as the record fades, a few steps apart
    probes = []
    for _ in range(200):
        if k := lengths.choose(["r"], [5], 1)[0]:
            lengths.observe("r", k, 0)
            probes.append(k)
    assert 10 < len(probes) < 50 and set(probes) == {1}


def test_right_guesses_grow_to_the_room_and_bigger_batches_guess_less():
    lengths = DraftLengths()
    for _ in range(8):
        k = lengths.choose(["r"], [5], 1)[0]
        lengths.observe("r", k, k)
    assert lengths.choose(["r"], [5], 1) == [5]
    assert lengths.choose(["r"], [3], 1) == [3]  # never beyond the room

    def settled(batch: int) -> int:
        """The length each of ``batch`` requests gets when three of every five guesses were kept."""
        ids = [f"b{i}" for i in range(batch)]
        record = DraftLengths()
        for request_id in ids:
            for _ in range(5):
                record.observe(request_id, 5, 3)
        return record.choose(ids, [5] * batch, batch)[0]

    assert 0 < settled(8) < settled(4) < settled(1)


def test_without_a_row_cost_every_request_guesses_its_room():
    lengths = DraftLengths(row_cost=0)
    lengths.observe("r", 5, 0)
    assert lengths.choose(["r", "s"], [5, 2], 2) == [5, 2]


@pytest.mark.parametrize("seed", range(20))
def test_the_lengths_are_the_best_combination(seed):
    rng = random.Random(seed)
    batch = rng.randint(1, 4)
    ids = [f"r{i}" for i in range(batch)]
    rooms = [rng.randint(1, 5) for _ in ids]
    lengths = DraftLengths()
    for request_id in ids:  # a random record per request
        for _ in range(rng.randint(0, 6)):
            proposed = rng.randint(1, 5)
            lengths.observe(request_id, proposed, rng.randint(0, proposed))
    chosen = lengths.choose(ids, rooms, batch)
    # the estimate after choose's ageing, as choose used it
    chances = [[lengths.acceptance(r) ** (j + 1) for j in range(room)] for r, room in zip(ids, rooms)]
    best = max(_rate(ks, chances, batch) for ks in itertools.product(*(range(room + 1) for room in rooms)))
    assert _rate(chosen, chances, batch) == pytest.approx(best, rel=1e-9)


def test_forgotten_requests_start_again_from_the_prior():
    lengths = DraftLengths()
    lengths.observe("r", 5, 0)
    lengths.forget("r")
    assert lengths.acceptance("r") == DraftLengths().acceptance("r")
    assert 0 < DECAY < 1
