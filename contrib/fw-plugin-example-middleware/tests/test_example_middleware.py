"""The installed plugin wraps the real server app built by fw (over a stub engine: the
header does not depend on what the engine generates)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from starlette.testclient import TestClient

from fw_plugin_example_middleware import HEADER_VALUE


class StubEngine:
    """Just enough of an engine for /health and /version."""

    tokenizer = None

    def __init__(self):
        from fw.engine.protocol import ModelInfo

        self.model_info = ModelInfo(name="stub", served_model_names=["stub"], path="/nowhere", max_model_len=16,
                                    vocab_size=8, max_logprobs=0, eos_token_ids=[0])

    def check_health(self):
        pass


def test_fw_asgi_middleware_adds_the_header_to_fw_serve_responses():
    from fw.config.options import build_bundle
    from fw.config.serve import ServeConfig
    from fw.server import build_app
    from fw.server.middleware import apply_asgi_hooks

    config = build_bundle(ServeConfig, {"disable_log_stats": True})
    app = apply_asgi_hooks(build_app(StubEngine(), config), config)
    client = TestClient(app)
    for path in ("/health", "/version", "/no-such-route"):
        response = client.get(path)
        assert response.headers["x-fw-example"] == HEADER_VALUE.decode(), path


def test_fw_plugins_lists_the_hook():
    fw = Path(sys.executable).with_name("fw")
    result = subprocess.run([str(fw), "plugins", "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    plugin = {p["name"]: p for p in json.loads(result.stdout)}["example_middleware"]
    assert plugin["distribution"] == "fw-plugin-example-middleware"
    assert plugin["hooks"] == ["fw_asgi_middleware"]
