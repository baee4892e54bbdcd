"""A benchmark script measured in this fw checkout and in another (``--baseline PATH``),
alternated round by round, since this machine is noisy: each run is the script itself in
a child process with that checkout's source roots on PYTHONPATH, printing its figures as
JSON lines (``--json``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
#: the comparison's own options, not passed on to each run
OWN_OPTIONS = ("--baseline", "--rounds")


def passed_on(argv: list[str]) -> list[str]:
    """``argv`` without the comparison's own options (and their values)."""
    passed, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in OWN_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in OWN_OPTIONS)):
            passed.append(arg)
    return passed


def run_checkout(script: str, source: Path, argv: list[str]) -> list[dict]:
    """``script`` with ``source``'s fw on the path; the JSON figures it printed."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(source / r) for r in ("core", "kernels", "plugins")))
    done = subprocess.run([sys.executable, script, *argv, "--json"], env=env, check=True, capture_output=True,
                          text=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def alternate(script: str, baseline: Path, rounds: int, argv: list[str]) -> dict[str, list[list[dict]]]:
    """``rounds`` runs of this checkout and of ``baseline``, alternated: {"this": [...],
    "baseline": [...]}, one list of figures per run."""
    passed = passed_on(argv)
    runs: dict[str, list[list[dict]]] = {"this": [], "baseline": []}
    for _ in range(rounds):
        runs["this"].append(run_checkout(script, HERE, passed))
        runs["baseline"].append(run_checkout(script, baseline.resolve(), passed))
    return runs
