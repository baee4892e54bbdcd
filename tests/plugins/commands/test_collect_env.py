"""`fw collect-env` prints every section a bug report needs, and hides secrets.

It runs in-process: its cost is importing torch, which the test session pays once.
"""

from __future__ import annotations

from click.testing import CliRunner

from fw.cli.main import cli


def test_collect_env_prints_the_sections():
    env = {"FW_TEST_SETTING": "visible", "HF_TOKEN": "hf_secret"}
    result = CliRunner().invoke(cli, ["collect-env"], env=env, prog_name="fw")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for section in ("== System ==", "== Versions ==", "== GPU ==", "== Distributed ==", "== fw plugins ==",
                    "== Environment variables =="):
        assert section in out
    for line in ("OS: ", "Python: ", "CPU: ", "CPU flags: ", "Memory: ", "fw: 0.", "torch: ",
                 "triton: ", "transformers: ", "CUDA available: ", "torch.distributed backends: ", "Ray: "):
        assert f"\n{line}" in out, line
    assert "commands (built-in; fw_builtins.commands.plugin)" in out
    assert "FW_TEST_SETTING=visible" in out
    assert "HF_TOKEN=***" in out and "hf_secret" not in out


def test_collect_env_reports_the_distributed_setup():
    import torch.distributed as dist

    env = {"RAY_ADDRESS": "10.0.0.5:6379", "GLOO_SOCKET_IFNAME": "eth1"}
    result = CliRunner().invoke(cli, ["collect-env"], env=env, prog_name="fw")
    assert result.exit_code == 0, result.output
    section = result.stdout.split("== Distributed ==")[1].split("==")[0]
    assert ("gloo" in section) == dist.is_gloo_available()
    assert "tensor parallelism over" in section
    assert "cluster: 10.0.0.5:6379" in section or "Ray: not installed (pip install fw[ray]" in section
    assert "GLOO_SOCKET_IFNAME=eth1" in section
