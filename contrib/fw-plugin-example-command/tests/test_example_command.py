"""`fw hello` exists once the plugin is installed, with config-derived options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def fw(*args: str) -> subprocess.CompletedProcess:
    program = Path(sys.executable).with_name("fw")
    return subprocess.run([str(program), *args], capture_output=True, text=True, timeout=60)


def test_fw_register_commands_adds_fw_hello():
    assert fw("hello").stdout == "Hello, world!\n"
    assert fw("hello", "fw", "--times", "2", "--shout").stdout == "HELLO, FW!\nHELLO, FW!\n"


def test_fw_help_lists_it_with_its_summary():
    result = fw("--help")
    assert result.returncode == 0, result.stderr
    assert "hello" in result.stdout and "Greet someone (an example plugin command)." in result.stdout


def test_bad_values_are_usage_errors():
    result = fw("hello", "--times", "0")
    assert result.returncode == 2 and "--times" in result.stderr and "Traceback" not in result.stderr


def test_options_come_from_the_config_group(tmp_path):
    assert "--shout" in fw("hello", "--help=shout").stdout
    config = tmp_path / "hello.yaml"
    config.write_text("name: YAML\ntimes: 1\n")
    assert fw("hello", "--config", str(config)).stdout == "Hello, YAML!\n"
