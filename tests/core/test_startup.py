"""`fw --help` is fast and never imports torch."""

from __future__ import annotations

import resource
import subprocess
import sys


def test_fw_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from fw.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'numpy', 'fastapi') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "HEAVY []" in out, out
    assert "serve" in out or "plugins" in out


def test_fw_help_returns_quickly():
    # CPU seconds, not wall time, and the best of three: a busy machine must not fail a correct build
    best = min(_cpu_seconds_of_help() for _ in range(3))
    assert best < 0.5, f"fw --help took {best:.2f} CPU s"


def _cpu_seconds_of_help() -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "fw.cli.main", "--help"], capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
