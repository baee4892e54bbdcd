"""`make mutation`'s driver: the run directory mutmut needs, module names, the score."""

from __future__ import annotations

import json
import tomllib

import pytest

from tests.mutation import LINKS, REPO, module_pattern, read_results, report, stage


def test_the_run_directory_links_the_packages_at_import_paths(tmp_path):
    root = stage(tmp_path / "run")
    assert (root / "fw" / "engine" / "scheduler.py").samefile(REPO / "core/fw/engine/scheduler.py")
    assert (root / "fw_builtins" / "tool_parsers" / "hermes.py").is_file()
    assert stage(tmp_path / "run") == root  # idempotent
    assert sorted(p.name for p in root.iterdir()) == sorted(LINKS)


def test_every_configured_module_exists():
    """A file renamed without updating [tool.mutmut] would silently drop out of the run."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    roots = {"fw": REPO / "core", "fw_builtins": REPO / "plugins"}
    for pattern in config["only_mutate"] + config["do_not_mutate"]:
        base = roots[pattern.split("/")[0]]
        assert list(base.glob(pattern)), pattern
    assert set(config["source_paths"]) == set(roots)


def test_modules_are_named_by_import_path_or_file():
    assert module_pattern("fw.engine.scheduler") == "fw.engine.scheduler.*"
    assert module_pattern("core/fw/engine/scheduler.py") == "fw.engine.scheduler.*"
    assert module_pattern("plugins/fw_builtins/tool_parsers/hermes.py") == "fw_builtins.tool_parsers.hermes.*"


def test_score_and_survivors_come_from_mutmuts_results(tmp_path):
    meta = tmp_path / "mutants" / "fw" / "engine" / "block_pool.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"fw.engine.block_pool.x_a__mutmut_1": 1, "fw.engine.block_pool.x_a__mutmut_2": 1,
             "fw.engine.block_pool.x_a__mutmut_3": 36, "fw.engine.block_pool.x_a__mutmut_4": 0,
             "fw.engine.block_pool.x_a__mutmut_5": 33, "fw.engine.block_pool.x_a__mutmut_6": None}
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    (tmp_path / "fw" / "engine").mkdir(parents=True)
    (tmp_path / "fw" / "engine" / "block_pool.py").touch()
    # a module deleted since its run (its results stay in mutants/)
    (meta.parent / "prompt.py.meta").write_text(json.dumps({"exit_code_by_key": {"fw.engine.prompt.x_a__mutmut_1": 0}}))
    (result,) = read_results(tmp_path)
    assert result.module == "fw.engine.block_pool"
    assert (result.total, result.detected) == (6, 3)
    assert result.score == 60.0  # 3 of the 5 that ran; the unchecked one does not count
    assert result.missed == {"fw.engine.block_pool.x_a__mutmut_4": "survived",
                             "fw.engine.block_pool.x_a__mutmut_5": "no tests"}
    assert result.part_of({"fw.engine"}) and not result.part_of({"fw.engine.block"})
    text = report([result], {"fw.engine.block_pool.x_a__mutmut_4": "-    a\n+    b"})
    assert "| fw.engine.block_pool | 6 | 2 | 1 | 1 | 1 | 1 | 60.0% |" in text
    assert "### fw.engine.block_pool.x_a__mutmut_4 (survived)" in text and "+    b" in text


def test_a_module_run_carries_on_where_the_last_one_stopped(tmp_path):
    from tests.mutation import ModuleResult, mutants_to_run

    done = ModuleResult("fw.engine.block_pool", unchecked=["fw.engine.block_pool.x_a__mutmut_6"],
                        missed={"fw.engine.block_pool.x_a__mutmut_4": "survived"})
    assert mutants_to_run([done], ["fw.engine.block_pool"]) == ["fw.engine.block_pool.x_a__mutmut_6"]
    assert mutants_to_run([done], ["fw.engine.block_pool"], again=True) == ["fw.engine.block_pool.*"]
    assert mutants_to_run([done], ["fw.engine.scheduler"]) == ["fw.engine.scheduler.*"]  # never run
    assert mutants_to_run([done], [], survivors=True) == ["fw.engine.block_pool.x_a__mutmut_4"]
    assert mutants_to_run([done], []) == []  # mutmut itself carries on over everything


def test_a_sample_names_that_many_untested_mutants_of_each_module():
    from tests.mutation import ModuleResult, mutants_to_run

    untested = [f"fw.engine.block_pool.x_a__mutmut_{i}" for i in range(1, 41)]
    pool = ModuleResult("fw.engine.block_pool", unchecked=untested, missed={"fw.engine.block_pool.x_b__mutmut_1": "survived"})
    other = ModuleResult("fw.engine.scheduler", unchecked=["fw.engine.scheduler.x_a__mutmut_1"])
    names = mutants_to_run([pool, other], ["fw.engine.block_pool", "fw.engine.scheduler"], sample=10)
    assert len(names) == 11 and len(set(names)) == 11
    assert set(names[:10]) < set(untested) and names[10] == "fw.engine.scheduler.x_a__mutmut_1"
    assert names[:10] != untested[:10]  # drawn, not the first ones
    assert names == mutants_to_run([pool, other], ["fw.engine.block_pool", "fw.engine.scheduler"], sample=10)


@pytest.mark.parametrize("argv", [["--sample", "5"], ["--module", "fw.engine.sampler", "--sample", "0"],
                                  ["--module", "fw.engine.sampler", "--sample", "5", "--again"],
                                  ["--sample", "5", "--survivors"]])
def test_a_sample_it_could_not_draw_is_refused(argv, capsys):
    """--sample is never silently ignored: without a module to draw from, or beside an
    option that runs other mutants, the command stops with a message naming it."""
    from tests.mutation import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2 and "--sample" in capsys.readouterr().err


def test_fresh_stats_forgets_which_tests_reach_which_function(tmp_path):
    from tests.mutation import forget_test_associations

    stats = tmp_path / "mutants" / "mutmut-stats.json"
    stats.parent.mkdir()
    stats.write_text("{}")
    forget_test_associations(tmp_path)
    assert not stats.exists()
    forget_test_associations(tmp_path)  # nothing to forget is fine
