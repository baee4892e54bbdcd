"""benchmarks/int8_peak.py and benchmarks/gemm_peak.py at tiny sizes: a figure for every
accumulator count and thread count asked; a row per projection shape and row count with
the layout the default int4 method runs there."""

from __future__ import annotations

import pytest

from fw_kernels import cpu
from fw_kernels.cpu import roofline

from tests.benchmark_scripts import REPO, load_benchmark

def table(output: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in output.splitlines()
            if line.startswith("| ") and not line.startswith("| accumulators") and not line.startswith("| rows")]


@pytest.mark.skipif(not roofline.int8_peak_available(), reason="the probe needs fw's CPU kernels with AVX512-VNNI")
def test_int8_peak_reports_each_accumulator_count_on_each_thread_count(capsys):
    load_benchmark("int8_peak").main(["--accumulators", "1", "--accumulators", "12", "--threads", "1", "--threads", "2",
                            "--rounds", "1", "--seconds", "0.01"])
    rows = table(capsys.readouterr().out)
    assert [r[0] for r in rows] == ["1", "12"]
    assert all(len(r) == 3 and float(r[1]) > 0 and float(r[2]) > 0 for r in rows)


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
def test_gemm_peak_reports_each_shape_at_each_row_count(capsys):
    from fw_builtins.quantization.int4 import Int4WeightOnly

    load_benchmark("gemm_peak").main(["--rows", "1", "--rows", "9", "--layers", "1", "--peak", "1000", "--seconds", "0.01"])
    rows = table(capsys.readouterr().out)
    script = load_benchmark("gemm_peak")
    assert [(r[0], r[1]) for r in rows] == [(str(n), s[0]) for n in (1, 9) for s in script.SHAPES]
    for r in rows:
        gops = float(r[4])
        assert gops >= 0 and abs(float(r[5].rstrip(" %")) - gops / 10) <= 0.51
    import torch
    expected = Int4WeightOnly().pack(torch.randn(576, 576).bfloat16())
    assert {r[3] for r in rows if r[1] == "o"} == {type(expected.layout_for(n)).__name__ for n in (1, 9)}


@pytest.mark.slow
@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
def test_gemm_peak_compares_with_another_checkout(capsys):
    """--baseline: both checkouts' figures (here the same one twice), their ratio, the peak."""
    load_benchmark("gemm_peak").main(["--rows", "1", "--layers", "1", "--peak", "1000", "--seconds", "0.01",
                            "--baseline", str(REPO), "--rounds", "1"])
    rows = table(capsys.readouterr().out)
    assert [r[1] for r in rows] == [s[0] for s in load_benchmark("gemm_peak").SHAPES]
    for r in rows:
        this, base, ratio = float(r[3]), float(r[6]), float(r[7])  # printed rounded: ratio of the unrounded
        assert r[2] == r[5] and this >= 0 and base > 0
        # at 0.01 s a round can stall on this busy machine: the ratio is checked, not its size
        assert ratio == pytest.approx(this / base, rel=0.5, abs=0.02)
        assert abs(float(r[4].rstrip(" %")) - this / 10) <= 0.51
