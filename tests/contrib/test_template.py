"""`fw plugin new`, run from fw's installed wheel, renders projects whose own tests pass
once installed: the registration test passes and the skeleton's unfinished parts show
up as xfailed NotImplementedError tests."""

from __future__ import annotations

from tests.contrib.conftest import RENDERED_KINDS, run_pytest


def test_rendered_projects_pass_and_report_their_unfinished_parts(ecosystem, tmp_path):
    assert len(RENDERED_KINDS) >= 2
    outcomes = run_pytest(ecosystem, list(ecosystem.rendered.values()), tmp_path / "rendered.xml")
    output = outcomes.pop("<output>")
    for kind, project in ecosystem.rendered.items():
        module = kind.replace("-", "_")
        mine = {test: outcome for test, outcome in outcomes.items() if f"test_{module}" in test}
        assert mine, f"no test of the rendered {kind} project ran:\n{output[-2000:]}"
        assert mine.pop(next(t for t in mine if "test_registered_through_the_hook" in t)) == "passed", output
        assert "xfailed" in mine.values(), output
        assert set(mine.values()) <= {"passed", "xfailed"}, output
    assert output.count("NotImplementedError") >= len(RENDERED_KINDS)


def test_rendered_project_lists_in_fw_plugins(ecosystem):
    result = ecosystem.venv.run("fw", "plugins")
    assert result.returncode == 0, result.stderr
    assert "ci_tool_parser  (fw-plugin-ci-tool-parser 0.1.0; fw_plugin_ci_tool_parser.plugin)" in result.stdout
    assert "model: CiModelForCausalLM" in result.stdout
