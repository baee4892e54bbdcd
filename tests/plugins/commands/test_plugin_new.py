"""`fw plugin new`: names, errors, and a well-formed project for every kind.

That rendered projects install and their tests pass is checked in a fresh venv
(tests/contrib/test_template.py); here the rendering itself is checked, fast.
"""

from __future__ import annotations

import ast
import re
import tomllib

import pytest

from fw import hookspecs
from fw_builtins.commands.plugin_cmd.render import KINDS, TemplateError, plugin_names, render
from tests.conftest import run_fw


def test_name_spellings():
    assert plugin_names("my-parser") == {"dist": "fw-plugin-my-parser", "package": "fw_plugin_my_parser",
                                         "snake": "my_parser", "hyphen": "my-parser", "camel": "MyParser"}
    assert plugin_names("fw-plugin-my_parser") == plugin_names("my-parser")


@pytest.mark.parametrize("bad", ["", "My", "9lives", "a--b", "a b", "ü", "-a"])
def test_bad_names_are_refused(bad):
    with pytest.raises(TemplateError, match="must be lowercase letters and digits"):
        plugin_names(bad)


def test_every_kind_implements_a_real_hook():
    specs = {name for name in dir(hookspecs) if name.startswith("fw_")}
    assert {kind.hook for kind in KINDS.values()} <= specs


@pytest.mark.parametrize("kind", list(KINDS))
def test_rendered_project_is_well_formed(kind, tmp_path):
    project = render("demo-thing", kind, tmp_path)
    assert project == tmp_path / "fw-plugin-demo-thing"
    files = sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file())
    module = kind.replace("-", "_")
    assert files == sorted(["README.md", "pyproject.toml", "fw_plugin_demo_thing/__init__.py",
                            "fw_plugin_demo_thing/plugin.py", f"fw_plugin_demo_thing/{module}.py",
                            f"tests/test_{module}.py"])
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"\$\{?[A-Za-z_]", text), f"unfilled placeholder in {path.name}"
            if path.suffix == ".py":
                ast.parse(text, filename=str(path))
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "fw-plugin-demo-thing"
    assert meta["project"]["entry-points"]["fw"] == {"demo_thing": "fw_plugin_demo_thing.plugin"}
    hook_module = (project / "fw_plugin_demo_thing/plugin.py").read_text()
    assert f"def {KINDS[kind].hook}(" in hook_module
    skeleton = (project / f"fw_plugin_demo_thing/{module}.py").read_text()
    assert "raise NotImplementedError(" in skeleton
    assert "xfail(raises=NotImplementedError, strict=True" in (project / f"tests/test_{module}.py").read_text()


def test_registered_names_follow_each_kinds_convention(tmp_path):
    def registration(kind):
        hook_module = (render("demo-thing", kind, tmp_path / kind) / "fw_plugin_demo_thing/plugin.py").read_text()
        return re.search(r'register\("([^"]+)", "([^"]+)"', hook_module).groups()

    assert registration("model") == ("DemoThingForCausalLM", "fw_plugin_demo_thing.model:DemoThingForCausalLM")
    assert registration("tool-parser") == ("demo_thing", "fw_plugin_demo_thing.tool_parser:DemoThingToolParser")
    assert registration("command") == ("demo-thing", "fw_plugin_demo_thing.command:demo_thing_command")


def test_cli_renders_and_refuses_clearly(tmp_path):
    result = run_fw("plugin", "new", "my-parser", "--kind", "tool-parser", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fw-plugin-my-parser/fw_plugin_my_parser/tool_parser.py").is_file()
    assert "pip install -e ." in result.stdout
    for args, message in (
        (["my-parser", "--kind", "tool-parser", "--output", str(tmp_path)], "already exists"),
        (["other"], "give --kind, one of: model, tool-parser"),
        (["--kind", "model"], "give the plugin's name"),
        (["Bad", "--kind", "model"], "must be lowercase"),
        (["x", "--kind", "nope"], "'nope' is not one of"),
    ):
        result = run_fw("plugin", "new", *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, args


def test_fw_help_lists_the_plugin_group():
    text = " ".join(run_fw("--help").stdout.split())  # unwrapped
    assert "plugin Start a plugin project" in text and "fw plugin new NAME --kind KIND" in text
    assert "new" in run_fw("plugin", "--help").stdout
