"""One fresh venv per session with fw (from its wheel), every contrib plugin and some
rendered template projects installed, as the plugin ecosystem's CI proof.

Contrib and rendered projects share the venv but not a process: each test run sets
``FW_PLUGINS`` to its own plugins' entry points, since a rendered skeleton (the
middleware's raises on every request) must not break the contrib plugins' tests.

If the venv cannot be made (no ``venv`` module, pip cannot build offline...) the tests
skip with the reason, except under CI (the ``CI`` environment variable), where an
ecosystem that cannot be installed is a failure.
"""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def ecosystem(tmp_path_factory) -> Ecosystem:
    root = tmp_path_factory.mktemp("ecosystem")
    try:
        venv = PluginVenv(root).create()
    except SetupFailed as exc:
        unavailable(exc)
    contrib = {name: copy_project(REPO / "contrib" / name, root / "contrib" / name) for name in CONTRIB}
    rendered = {}
    for kind in RENDERED_KINDS:
        result = venv.run("fw", "plugin", "new", f"ci-{kind}", "--kind", kind, "--output", root / "rendered")
        assert result.returncode == 0, f"fw plugin new --kind {kind} (from the wheel) failed:\n{result.stderr}"
        rendered[kind] = root / "rendered" / f"fw-plugin-ci-{kind}"
    try:
        venv.pip_install(*contrib.values(), *rendered.values())
    except SetupFailed as exc:
        unavailable(exc)
    return Ecosystem(venv, contrib, rendered)


def unavailable(exc: SetupFailed) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the plugin ecosystem cannot be installed: {exc}")
    pytest.skip(f"cannot build a fresh venv with the plugins here (set CI=1 to make this fail): {exc}")


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
