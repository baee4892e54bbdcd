"""Load a script under benchmarks/ as a module, leaving the test process's import path as it was.

The scripts put benchmarks/ on ``sys.path`` to import their siblings. In a test process that
change would outlive the test: engine-core processes spawned later inherit the path, and a
sibling named like a real package (transformers imports a PyPI package called ``kernels``)
would shadow it there."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


def load_benchmark(name: str, module_name: str | None = None) -> ModuleType:
    """benchmarks/<name>.py executed as module ``module_name`` (default ``name``)."""
    saved = list(sys.path)
    try:
        spec = importlib.util.spec_from_file_location(module_name or name, BENCHMARKS / f"{name}.py")
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        return script
    finally:
        sys.path[:] = saved
