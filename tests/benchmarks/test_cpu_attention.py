"""benchmarks/cpu_attention.py at a tiny size: one table row per cache format and context,
with figures."""

from __future__ import annotations

import pytest

from fw_kernels import cpu

from tests.benchmark_scripts import load_benchmark

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")


def test_reports_each_format_and_context(capsys):
    script = load_benchmark("cpu_attention")
    script.main(["--context", "20", "--context", "33", "--seqs", "2", "--layers", "2", "--kv", "auto", "--kv", "int8",
                 "--kv", "fp8"])
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| KV")]
    assert [(r[0], int(r[1]), int(r[2])) for r in rows] == [
        (kv, 2, context) for kv in ("auto", "int8", "fp8") for context in (20, 33)]
    assert all(float(value) > 0 for r in rows for value in r[3:])
