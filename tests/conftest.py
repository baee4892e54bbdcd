"""Shared fixtures: running `fw` in a subprocess, tiny random checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_fw(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m fw.cli.main ARGS` as a user would run `fw ARGS`."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "fw.cli.main", *args], capture_output=True, text=True,
        env=full_env, timeout=timeout, input=input,
    )


@pytest.fixture
def fw_cli():
    return run_fw
