"""benchmarks/triton_kernels.py: the logic runs (tiny shapes, interpreter) and it degrades politely."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "triton_kernels.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_smoke_run_checks_every_kernel_against_sdpa():
    result = _run("--smoke")
    assert result.returncode == 0, result.stderr
    for name in ("write_kv", "decode", "prefill (whole prompt)", "prefill (8-token chunk)", "of copy bandwidth"):
        assert name in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device would run the real benchmark")
def test_without_cuda_it_says_so_and_exits_0():
    result = _run()
    assert result.returncode == 0
    assert "needs a CUDA device" in result.stdout
