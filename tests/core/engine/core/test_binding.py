"""Each local data parallel rank gets its own share of the machine's cores."""

from __future__ import annotations

import os

import pytest

from fw.engine.core.binding import plan_bindings


def test_ranks_split_the_cores_without_sharing_one():
    cores = sorted(os.sched_getaffinity(0))
    bindings = plan_bindings(2, "auto")
    if len(cores) >= 2:
        assert bindings[0].cpus and bindings[1].cpus
        assert not set(bindings[0].cpus) & set(bindings[1].cpus)
        assert sorted(bindings[0].cpus + bindings[1].cpus) == cores
    assert plan_bindings(1, "auto")[0].cpus is None  # one rank: left as it is


def test_the_environment_variable_overrides_the_split():
    assert [b.cpus for b in plan_bindings(2, "0-1|3,5")] == [[0, 1], [3, 5]]
    assert [b.cpus for b in plan_bindings(2, "nobind")] == [None, None]
    with pytest.raises(ValueError, match="gives 1 core lists for 2"):
        plan_bindings(2, "0-3")
    with pytest.raises(ValueError, match="core lists look like"):
        plan_bindings(1, "zero")
