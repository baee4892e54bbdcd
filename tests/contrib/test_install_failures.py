"""A plugin that does not install fails the suite; only a missing tool skips it."""

from __future__ import annotations

import pytest

from tests.contrib.conftest import CONTRIB, install_plugins, skip_without_tools
from tests.contrib.plugin_venv import REPO, PluginVenv, copy_project


def test_a_plugin_that_does_not_install_is_a_failure(tmp_path):
    venv = PluginVenv(tmp_path).create(with_fw=False)
    broken = copy_project(REPO / "contrib" / CONTRIB[0], tmp_path / "broken")
    pyproject = broken / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("[project]", "[project", 1))
    with pytest.raises(BaseException) as outcome:  # a skip must not pass for a failure
        install_plugins(venv, [broken])
    assert outcome.type is pytest.fail.Exception, f"{outcome.type.__name__}: {outcome.value}"
    assert "a plugin does not install: pip install failed" in str(outcome.value)


def test_a_missing_tool_skips_except_under_ci(monkeypatch):
    skip_without_tools()  # make test installs them all
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="fw_no_such_tool not installed"):
        skip_without_tools(("venv", "fw_no_such_tool"))
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="fw_no_such_tool not installed"):
        skip_without_tools(("venv", "fw_no_such_tool"))
