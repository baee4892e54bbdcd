"""FW_TRACE_PLUGINS=1 logs every hook call: its arguments, what it registered, and its
result or error, however fw calls the hook."""

from __future__ import annotations

import logging

import pytest

from fw import hookimpl
from fw.plugins import PluginHost
from tests.conftest import run_fw
from tests.core.test_plugins import GOOD, make_distribution


def test_cli_trace_shows_arguments_registrations_and_results(tmp_path):
    make_distribution(tmp_path, "fw-plugin-good", {"good": "fw_good_plugin"}, {"fw_good_plugin": GOOD})
    result = run_fw("plugins", env={"PYTHONPATH": str(tmp_path), "FW_TRACE_PLUGINS": "1", "FW_PLUGINS": "good"})
    assert result.returncode == 0, result.stderr
    prefix = "hook fw_register_tool_parsers [plugin good]"
    for line in (f"{prefix} called with register=<register callback>",
                 f"{prefix} register('shouty', 'fw_good_plugin:ShoutyParser', aliases=['loud'])",
                 f"{prefix} returned None",
                 "hook fw_register_models [plugin models] register('LlamaForCausalLM', "):
        assert line in result.stderr, line


def test_without_the_switch_nothing_is_traced(tmp_path):
    make_distribution(tmp_path, "fw-plugin-good", {"good": "fw_good_plugin"}, {"fw_good_plugin": GOOD})
    result = run_fw("plugins", env={"PYTHONPATH": str(tmp_path), "FW_TRACE_PLUGINS": "0"})
    assert "hook fw_register" not in result.stderr


class Wrapping:
    """An in-process plugin object (methods, not module functions)."""

    @hookimpl
    def fw_asgi_middleware(self, app, config):
        if app == "broken":
            raise RuntimeError("boom")
        return ("wrapped", app)


@pytest.fixture
def traced_host(monkeypatch, caplog):
    monkeypatch.setenv("FW_TRACE_PLUGINS", "1")
    caplog.set_level(logging.INFO, logger="fw.plugins")
    host = PluginHost()
    host.register_module(Wrapping(), "wrapping")
    return host


def test_calls_through_pluggy_and_one_implementation_at_a_time_are_traced(traced_host, caplog):
    assert traced_host.call("fw_asgi_middleware", app="app0", config={"port": 1}) == [("wrapped", "app0")]
    (impl,) = traced_host.pm.hook.fw_asgi_middleware.get_hookimpls()
    assert impl.function(app="app1", config=None) == ("wrapped", "app1")
    prefix = "hook fw_asgi_middleware [plugin wrapping]"
    assert f"{prefix} called with app='app0', config={{'port': 1}}" in caplog.text
    assert f"{prefix} returned ('wrapped', 'app0')" in caplog.text
    assert f"{prefix} called with app='app1', config=None" in caplog.text


def test_errors_are_traced_and_still_raised(traced_host, caplog):
    with pytest.raises(RuntimeError, match="boom"):
        traced_host.call("fw_asgi_middleware", app="broken", config=None)
    assert "hook fw_asgi_middleware [plugin wrapping] raised RuntimeError('boom')" in caplog.text


def test_long_arguments_are_shortened(traced_host, caplog):
    traced_host.call("fw_asgi_middleware", app="x" * 10_000, config=None)
    line = next(r.getMessage() for r in caplog.records if "called with" in r.getMessage())
    assert len(line) < 400 and "..." in line
