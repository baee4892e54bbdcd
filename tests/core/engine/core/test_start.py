"""The API server process of `fw serve` runs without torch: the engine cores import it,
the server checks its options, loads the tokenizer and starts its client without it (a
second torch import was ~2 s of every start's CPU time)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.tiny_gguf import make_tiny_gguf

API_SERVER_START = """
import sys
from fw.config.options import build_bundle
from fw.config.serve import ServeConfig
from fw.server.launch import check_options
from fw.engine.core.client import EngineCoreClient
from fw.engine.core.start import load_tokenizer, start_engine_client

config = build_bundle(ServeConfig, {"model": sys.argv[1], "port": 0})
check_options(config)
tokenizer = load_tokenizer(config.engine_config())
print("TOKENS", tokenizer.encode("hello world"))
print("HEAVY", sorted(m for m in ("torch",) if m in sys.modules))
"""


def test_the_api_server_loads_its_tokenizer_without_torch(tiny_llama, tmp_path, fw_cache_dir):
    gguf = make_tiny_gguf(tmp_path / "tiny.gguf", tiny_llama)
    run = subprocess.run([sys.executable, "-c", API_SERVER_START, str(gguf)], capture_output=True, text=True,
                         env={**os.environ, "FW_CACHE_DIR": str(fw_cache_dir)}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "TOKENS [" in run.stdout and "HEAVY []" in run.stdout, run.stdout + run.stderr
