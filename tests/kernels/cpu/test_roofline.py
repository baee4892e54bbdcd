"""The probes of this machine's limits: the int8 peak counts its operations right for any
number of accumulators and threads, and refuses what it has no loop for."""

from __future__ import annotations

import pytest

from fw_kernels.cpu import roofline

needs_probe = pytest.mark.skipif(not roofline.int8_peak_available(),
                                 reason="the int8 peak probe (AVX512-VNNI) is not built on this CPU")


@needs_probe
@pytest.mark.parametrize("accumulators", roofline.ACCUMULATORS)
@pytest.mark.parametrize("threads", [1, 2])
def test_counts_128_operations_per_vpdpbusd_on_each_thread(accumulators, threads):
    ops, seconds = roofline.run_probe(1000, accumulators, threads)
    assert ops == 1000 * accumulators * threads * 128
    assert len(seconds) == threads and all(s > 0 for s in seconds)
    assert roofline.int8_peak(threads, accumulators, seconds=0.01, repeats=1) > 0


@needs_probe
def test_refuses_an_accumulator_count_it_has_no_loop_for():
    assert roofline._peak_function()(1000, 3, 1, None) == 0
    with pytest.raises(ValueError, match="accumulators must be one of"):
        roofline.int8_peak(1, 3)


def test_copy_bandwidth_is_measured():
    assert roofline.copy_bandwidth(megabytes=8, repeats=2) > 0
