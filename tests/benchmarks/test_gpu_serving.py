"""benchmarks/gpu_serving.py --dry-run: the device benchmark's whole logic on the CPU with
the tiny checkpoint (machine line, bandwidth probe, device-vs-CPU greedy parity, batch-1
step against the bandwidth bound, fw serve under fw bench serve, transformers generate,
the goals), so the script the device session runs is known to work. Every server it
starts is stopped by the script (its process group) before it returns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_dry_run_fills_every_section(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_serving.py"), "--dry-run",
                           "--output-json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["dry_run"] and figures["bandwidth"] > 0
    assert all(arch["equal"] for arch in figures["parity"].values())
    (step,) = figures["steps"].values()
    assert step["step_ms"] > 0 and step["bound_ms"] > 0 and step["weight_bytes"] > 0
    (served,) = figures["serving"].values()
    assert set(served) == {"1", "2"} and all(s["completed"] == n for s, n in zip(served.values(), (2, 4)))
    (generated,) = figures["transformers"].values()
    assert set(generated) == {"1", "2"} and all(rate > 0 for rate in generated.values())
    assert figures["goals"]
