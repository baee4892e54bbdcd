"""benchmarks/cpu_attention.py at a tiny size: one table row per context, with figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fw_kernels import cpu

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cpu_attention.py"

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")


def test_reports_each_context(capsys):
    spec = importlib.util.spec_from_file_location("cpu_attention", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--context", "20", "--context", "33", "--seqs", "2", "--layers", "2"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| 2 |")]
    assert [int(r[1]) for r in rows] == [20, 33]
    assert all(float(value) > 0 for r in rows for value in r[2:])
