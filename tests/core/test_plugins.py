"""The plugin host, exercised with a real distribution on a subprocess's path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_fw


def make_distribution(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """A minimal installed distribution: a dist-info with entry points, plus its modules."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[fw]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


GOOD = """
    from fw import hookimpl

    @hookimpl
    def fw_register_tool_parsers(register):
        register("shouty", "fw_good_plugin:ShoutyParser", aliases=["loud"])

    @hookimpl
    def fw_register_commands(register):
        register("hello", "fw_good_plugin:hello", help="Say hello.")

    class ShoutyParser:
        pass

    import click

    @click.command()
    def hello():
        click.echo("hello from a plugin")
"""

BROKEN = """
    raise RuntimeError("this plugin is broken on purpose")
"""

MISSPELLED = """
    from fw import hookimpl

    @hookimpl
    def fw_register_tool_parser(register):
        register("never", "x:y")
"""


@pytest.fixture
def plugin_path(tmp_path):
    make_distribution(tmp_path, "fw-plugin-good", {"good": "fw_good_plugin"}, {"fw_good_plugin": GOOD})
    make_distribution(tmp_path, "fw-plugin-broken", {"broken": "fw_broken_plugin"}, {"fw_broken_plugin": BROKEN})
    make_distribution(tmp_path, "fw-plugin-typo", {"typo": "fw_typo_plugin"}, {"fw_typo_plugin": MISSPELLED})
    return str(tmp_path)


def test_plugin_names_are_listed_and_resolve(plugin_path):
    result = run_fw("plugins", "--json", env={"PYTHONPATH": plugin_path})
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    good = plugins["good"]
    assert good["distribution"] == "fw-plugin-good" and good["version"] == "1.2.3"
    assert good["hooks"] == ["fw_register_commands", "fw_register_tool_parsers"]
    assert good["registers"] == {"command": ["hello"], "tool_parser": ["shouty"]}
    # The plugin's command is a real subcommand, listed with its help.
    help_text = run_fw("--help", env={"PYTHONPATH": plugin_path}).stdout
    assert "hello" in help_text and "Say hello." in help_text
    assert run_fw("hello", env={"PYTHONPATH": plugin_path}).stdout.strip() == "hello from a plugin"


def test_plugin_names_resolve_by_name_and_alias(plugin_path):
    code = (
        "from fw.plugins import load, registry\n"
        "print(load('tool_parser', 'shouty').__name__, load('tool_parser', 'loud').__name__)\n"
        "try:\n    registry('tool_parser').load('nope')\nexcept ValueError as e:\n    print(e)\n"
    )
    import subprocess, sys, os
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": plugin_path})
    lines = result.stdout.splitlines()
    assert lines[0] == "ShoutyParser ShoutyParser"
    assert lines[1].startswith("unknown tool parser 'nope'; available: ") and "shouty" in lines[1]


def test_broken_plugin_warns_with_its_name_and_error(plugin_path):
    result = run_fw("plugins", env={"PYTHONPATH": plugin_path})
    assert result.returncode == 0
    assert "plugin 'broken'" in result.stderr and "this plugin is broken on purpose" in result.stderr
    assert "FAILED TO LOAD: RuntimeError: this plugin is broken on purpose" in result.stdout


def test_strict_mode_turns_a_broken_plugin_into_an_error(plugin_path):
    result = run_fw("plugins", env={"PYTHONPATH": plugin_path, "FW_STRICT_PLUGINS": "1"})
    assert result.returncode == 2
    assert "this plugin is broken on purpose" in result.stderr
    assert "Traceback" not in result.stderr


def test_misspelled_hook_is_reported_with_a_suggestion(plugin_path):
    result = run_fw("plugins", env={"PYTHONPATH": plugin_path})
    assert ("plugin 'typo' implements unknown hook 'fw_register_tool_parser'; "
            "did you mean 'fw_register_tool_parsers'?") in result.stderr


def test_fw_plugins_allow_list_filters_third_party(plugin_path):
    result = run_fw("plugins", "--json", env={"PYTHONPATH": plugin_path, "FW_PLUGINS": "good"})
    names = {p["name"] for p in json.loads(result.stdout)}
    assert "good" in names and "broken" not in names and "typo" not in names
    assert "commands" in names  # fw's own built-ins always load
    assert "broken" not in result.stderr
    result = run_fw("plugins", "--json", env={"PYTHONPATH": plugin_path, "FW_PLUGINS": ""})
    assert "good" not in {p["name"] for p in json.loads(result.stdout)}


def test_trace_logs_hook_calls(plugin_path):
    result = run_fw("plugins", env={"PYTHONPATH": plugin_path, "FW_TRACE_PLUGINS": "1", "FW_PLUGINS": "good"})
    assert "hook fw_register_tool_parsers [plugin good]" in result.stderr
