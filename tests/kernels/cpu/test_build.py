"""Building the CPU kernels: cached per source and machine, and optional — without a
compiler (or with FW_CPU_KERNELS=0) fw says so once and keeps its torch path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fw_kernels import cpu

PROBE = "import fw_kernels.cpu as c; print('available' if c.available() else 'unavailable')"


def _probe(tmp_path, **env):
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            env={**os.environ, "FW_CACHE_DIR": str(tmp_path), **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), result.stderr


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
def test_builds_once_into_the_cache(tmp_path):
    assert _probe(tmp_path)[0] == "available"
    built = list((tmp_path / "kernels").glob("fw_cpu-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    assert _probe(tmp_path)[0] == "available"
    assert built[0].stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_a_failing_compiler_leaves_the_torch_path(tmp_path):
    status, log = _probe(tmp_path, CC="false")
    assert status == "unavailable"
    assert "could not be built" in log and "plain-torch" in log


def test_can_be_turned_off(tmp_path):
    assert _probe(tmp_path, FW_CPU_KERNELS="0")[0] == "unavailable"
    assert not (tmp_path / "kernels").exists()
