"""benchmarks/cpu_attention.py at a tiny size: one table row per context, with figures."""

from __future__ import annotations

import pytest

from fw_kernels import cpu

from tests.benchmark_scripts import load_benchmark

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")


def test_reports_each_context(capsys):
    script = load_benchmark("cpu_attention")
    script.main(["--context", "20", "--context", "33", "--seqs", "2", "--layers", "2"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| 2 |")]
    assert [int(r[1]) for r in rows] == [20, 33]
    assert all(float(value) > 0 for r in rows for value in r[2:])
