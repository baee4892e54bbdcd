"""Building the CPU kernels: cached per source and machine, and optional — without a
compiler (or with FW_CPU_KERNELS=0) fw says so once and keeps its torch path."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from fw_kernels import cpu

REPO = Path(__file__).resolve().parents[3]
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


PORTABLE_CHECK = """
import torch
from fw_kernels import cpu, reference
from fw_kernels.cpu import packing
from tests.kernels.paged import make_batch
assert cpu.available() and not cpu.dense_available()
# float32 sums in float32 as the references do (~3e-7 apart); bfloat16 rounds its inputs
for dtype, tolerance in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
    b = make_batch([3, 40], num_kv_heads=2, group=3, head_size=64, dtype=dtype)
    out = cpu.paged_decode(b.query, b.key_cache, b.value_cache, b.block_table, b.seq_lens, 0.125, max_len=40)
    ref = reference.paged_attention_decode(b.query, b.key_cache, b.value_cache, b.block_table, b.seq_lens, 0.125)
    assert (out.float() - ref.float()).abs().max() < tolerance, (dtype, (out.float() - ref.float()).abs().max())
    w = torch.randn(40, 64)
    x = torch.randn(3, 64).to(dtype)
    for pack, unpack, gemv in ((packing.pack_int4, packing.unpack_int4, cpu.int4_gemv),
                               (packing.pack_int8, packing.unpack_int8, cpu.int8_gemv)):
        blocks = pack(w)
        want = x.float() @ unpack(*blocks, rows=40).t()
        assert (gemv(x, *blocks, None, 40).float() - want).abs().max() < tolerance * want.abs().max(), dtype
print("portable ok")
"""
PORTABLE = {"FW_CPU_MARCH": "x86-64-v2"}  # no AVX-512: the plain loops, no dense or int8 GEMM
x86_build = pytest.mark.skipif(platform.machine() != "x86_64" or not cpu.available(),
                               reason="an x86-64 build with a compiler")


@x86_build
def test_the_portable_paths_build_and_agree(tmp_path):
    """Built for a CPU without AVX-512 (x86-64-v2), the kernels take their plain loops
    (and no dense GEMM) and still agree with the references."""
    result = subprocess.run([sys.executable, "-c", PORTABLE_CHECK], capture_output=True, text=True, timeout=300,
                            cwd=REPO, env={**os.environ, "FW_CACHE_DIR": str(tmp_path), **PORTABLE})
    assert result.returncode == 0 and "portable ok" in result.stdout, result.stderr[-2000:]


#: every test whose code path depends on which kernels the build has
KERNEL_TESTS = ["tests/kernels/cpu", "tests/core/layers/test_linear.py", "tests/core/layers/test_lm_head.py",
                "tests/plugins/attention/test_torch_backend.py", "tests/plugins/quantization/test_int4.py",
                "tests/core/engine/test_fused_decode.py"]


@pytest.mark.slow
@x86_build
@pytest.mark.skipif(os.environ.get("FW_CPU_MARCH") == PORTABLE["FW_CPU_MARCH"], reason="this is the portable run")
def test_the_kernel_tests_pass_on_the_portable_build(tmp_path):
    """The kernel tests again, on a build for a CPU without AVX-512: what such a CPU runs is
    checked at the same tolerances (1e-5 in float32) even on this machine. Only the tests
    of kernels that build does not have may skip."""
    report = tmp_path / "portable.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider",
               f"--junitxml={report}", *KERNEL_TESTS]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO,
                            env={**os.environ, "FW_CACHE_DIR": str(tmp_path / "cache"), **PORTABLE})
    assert result.returncode == 0, result.stdout[-4000:]
    outcomes = {"passed": 0}
    for case in ElementTree.parse(report).iter("testcase"):
        skipped = case.find("skipped")
        if skipped is None:
            outcomes["passed"] += 1
            continue
        reason = skipped.get("message", "")
        assert "is not built on this CPU" in reason, f"{case.get('name')} skipped: {reason}"
        outcomes[reason] = outcomes.get(reason, 0) + 1
    assert outcomes["passed"] > 150 and any("dense bf16 GEMM" in reason for reason in outcomes), outcomes
