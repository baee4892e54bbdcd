"""One fresh venv per session with fw (from its wheel), every contrib plugin and some
rendered template projects installed, as the plugin ecosystem's CI proof.

Contrib and rendered projects share the venv but not a process: each test run sets
``FW_PLUGINS`` to its own plugins' entry points, since a rendered skeleton (the
middleware's raises on every request) must not break the contrib plugins' tests.

A plugin that does not install (a broken pyproject.toml, a build error) fails these
tests: installing is what they prove. They skip, saying why, only where a tool the
``test`` extra provides is missing (``build``, ``setuptools``, ``pip``, the ``venv``
module), which ``make test`` never lets happen, and not even then under CI (the ``CI``
environment variable).
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.contrib.plugin_venv import REPO, PluginVenv, SetupFailed, copy_project

CONTRIB = sorted(p.name for p in (REPO / "contrib").iterdir() if (p / "pyproject.toml").is_file())
#: the kinds CI renders from the template (each one's tests are run)
RENDERED_KINDS = ("tool-parser", "model", "middleware")


@dataclass
class Ecosystem:
    venv: PluginVenv
    #: contrib distribution name -> its copy (tests run from here)
    contrib: dict[str, Path]
    #: template kind -> its rendered project
    rendered: dict[str, Path]

    @staticmethod
    def allow(projects) -> dict[str, str]:
        """The environment that loads only these projects' plugins (and fw's built-ins)."""
        return {"FW_PLUGINS": ",".join(name for project in projects for name in entry_points(project))}


def entry_points(project: Path) -> list[str]:
    """The names a project declares in the ``fw`` entry-point group."""
    data = tomllib.loads((project / "pyproject.toml").read_text())
    return list(data["project"]["entry-points"]["fw"])


#: what making the venv and building the wheels needs (all in the ``test`` extra or stdlib)
TOOLS = ("venv", "build", "setuptools", "pip")


@pytest.fixture(scope="session")
def ecosystem(tmp_path_factory) -> Ecosystem:
    skip_without_tools()
    root = tmp_path_factory.mktemp("ecosystem")
    try:
        venv = PluginVenv(root).create()
    except SetupFailed as exc:
        pytest.fail(f"fw's wheel does not build or install into a fresh venv: {exc}")
    contrib = {name: copy_project(REPO / "contrib" / name, root / "contrib" / name) for name in CONTRIB}
    rendered = {}
    for kind in RENDERED_KINDS:
        result = venv.run("fw", "plugin", "new", f"ci-{kind}", "--kind", kind, "--output", root / "rendered")
        assert result.returncode == 0, f"fw plugin new --kind {kind} (from the wheel) failed:\n{result.stderr}"
        rendered[kind] = root / "rendered" / f"fw-plugin-ci-{kind}"
    install_plugins(venv, [*contrib.values(), *rendered.values()])
    return Ecosystem(venv, contrib, rendered)


def install_plugins(venv: PluginVenv, projects: list[Path]) -> None:
    """pip install the projects into the venv; a project that does not install is a failure."""
    try:
        venv.pip_install(*projects)
    except SetupFailed as exc:
        pytest.fail(f"a plugin does not install: {exc}")


def skip_without_tools(tools: tuple[str, ...] = TOOLS) -> None:
    """Skip (fail under CI) where a tool the venv and the builds need is not installed."""
    missing = [name for name in tools if importlib.util.find_spec(name) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (pip install -e '.[test]' provides them)"
    if os.environ.get("CI"):
        pytest.fail(f"cannot test the plugin ecosystem: {message}")
    pytest.skip(f"cannot test the plugin ecosystem: {message}")


def run_pytest(ecosystem: Ecosystem, projects: list[Path], report: Path) -> dict[str, str]:
    """Run the projects' tests in the venv, with only their plugins loaded; returns
    ``{test id: outcome}`` from JUnit XML (and the output under ``"<output>"``).

    Outcomes: passed, failed, error, skipped, xfailed. One process for all paths keeps
    the run short; ``--import-mode=importlib`` keeps the projects' test modules apart.
    """
    result = ecosystem.venv.run("python", "-m", "pytest", "-q", "-rxX", "-p", "no:cacheprovider",
                                "--import-mode=importlib", f"--junitxml={report}",
                                *(project / "tests" for project in projects), timeout=300,
                                **ecosystem.allow(projects))
    if not report.is_file():
        raise AssertionError(f"pytest did not run:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        test_id = f"{case.get('file') or case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = child.tag.replace("failure", "failed")
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        outcomes[test_id] = outcome
    outcomes["<output>"] = result.stdout
    return outcomes
