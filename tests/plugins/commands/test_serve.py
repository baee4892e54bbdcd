"""`fw serve`: its help, and its wiring from options to a listening server (fake engine)."""

from __future__ import annotations

import re
import threading

import httpx
import pytest
from click.testing import CliRunner

from fw.config.options import build_bundle
from fw.config.serve import ServeConfig
from tests.conftest import run_fw
from tests.core.server.fake_engine import FakeEngine


def test_serve_help_lists_the_frontend_group():
    result = run_fw("serve", "--help")
    assert result.returncode == 0, result.stderr
    for group in ("ServeOptions", "Frontend", "ModelConfig", "CacheConfig"):
        assert group in result.stdout
    result = run_fw("serve", "--help=frontend")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # unwrapped
    for flag in ("--host HOST", "--api-key API_KEY", "[env: FW_API_KEY]", "--chat-template-content-format",
                 "--enable-request-id-headers, --no-enable-request-id-headers", "--middleware", "--uds"):
        assert flag in text, flag
    assert "--max-model-len" not in text
    assert "(default: '127.0.0.1')" in text


def test_options_reach_the_config(monkeypatch):
    import fw_builtins.commands.serve as serve_module

    captured = []
    monkeypatch.setattr(serve_module, "run_server", lambda config: captured.append(config))
    result = CliRunner().invoke(serve_module.serve, [
        "/models/x", "--port", "9001", "--api-key", "a", "--api-key", "b", "--middleware", "m:one",
        "--max-model-len", "1k", "--disable-log-stats", "--root-path", "/api"])
    assert result.exit_code == 0, result.output
    config = captured[0]
    assert config.model.model == "/models/x" and config.model.max_model_len == 1000
    assert config.frontend.port == 9001 and config.frontend.api_key == ["a", "b"]
    assert config.frontend.middleware == ["m:one"] and config.frontend.root_path == "/api"
    assert config.options.disable_log_stats


def test_bad_options_fail_before_the_engine_loads(tmp_path):
    import fw_builtins.commands.serve as serve_module

    def never(config):
        raise AssertionError("the engine must not be loaded")

    for options, message in (
        ({"chat_template": str(tmp_path / "nope.jinja")}, "neither a readable file"),
        ({"chat_template": "{% for %}"}, "--chat-template: the chat template is not valid Jinja"),
        ({"middleware": ["no.such.module:thing"]}, "cannot be imported"),
        ({"ssl_certfile": str(tmp_path / "cert.pem")}, "--ssl-certfile: no such file"),
        ({"lora_path_roots": [str(tmp_path / "adapters")]}, "--lora-path-roots: no such folder"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            serve_module.run_server(build_bundle(ServeConfig, options), never)
    result = CliRunner().invoke(serve_module.serve, ["--chat-template", "{% for %}"])
    assert result.exit_code == 1 and "not valid Jinja" in result.output and "Traceback" not in result.output


def test_run_server_with_a_fake_engine(caplog):
    from fw_builtins.commands.serve import run_server

    engine = FakeEngine()
    config = build_bundle(ServeConfig, {"port": 0, "disable_log_stats": True, "uvicorn_log_level": "warning"})
    started = {}
    ready = threading.Event()

    def on_started(server, urls):
        started.update(server=server, urls=urls)
        ready.set()

    caplog.set_level("INFO")
    thread = threading.Thread(target=run_server, args=(config, lambda cfg: engine), kwargs={"on_started": on_started})
    thread.start()
    try:
        assert ready.wait(30)
        url = started["urls"][0]
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == "fake-model"
    finally:
        started["server"].should_exit = True
        thread.join(15)
    assert engine.shut_down
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("engine ready in") for m in messages)
    assert any(m.startswith("plugins loaded: ") and "commands" in m for m in messages)
    assert any(m.startswith(f"serving fake-model on {url}") for m in messages)
