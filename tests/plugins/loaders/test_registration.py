"""Registering the loaders is cheap: no torch, no loader module, until a format is used."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_registration_imports_no_loader_and_no_torch():
    code = (
        "import sys; from fw import plugins; "
        "entries = plugins.registry('load_format').entries(); "
        "print(sorted((e.name, e.plugin) for e in entries)); "
        "print('torch' in sys.modules, sorted(m for m in sys.modules if m.endswith('_loader')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    names, imported = result.stdout.splitlines()
    assert names == str([(n, "load_formats") for n in ("dummy", "gguf", "pt", "safetensors")])
    assert imported == "False []"


def test_auto_priorities_order_safetensors_pt_gguf():
    from fw import plugins

    priority = {name: plugins.load("load_format", name).auto_priority
                for name in ("safetensors", "pt", "gguf", "dummy")}
    assert priority["safetensors"] > priority["pt"] > priority["gguf"]
    assert priority["dummy"] is None
