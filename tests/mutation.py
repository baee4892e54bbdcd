"""Mutation testing: ``make mutation`` (or ``python -m tests.mutation``).

mutmut changes one thing at a time in the modules ``[tool.mutmut]`` in pyproject.toml
lists (a ``<`` for a ``<=``, a dropped argument, a string that is no longer the same...)
and runs the tests that reach the changed function. A mutant no test notices is a
breakage users could ship: the report lists each such survivor with its diff.

mutmut names a mutant by the path of its file and imports the mutated copy from
``mutants/``, which assumes the package folders sit at the top of the project. fw's sit
under source roots (core/fw, plugins/fw_builtins), so the run happens in
``build/mutation``, where ``fw``, ``fw_builtins``, ``tests`` and ``pyproject.toml`` are
links into the repository; ``fw_kernels`` (not mutated) is imported from ``kernels/``.
Results stay in ``build/mutation/mutants`` between runs: only functions that changed
since are run again.

    python -m tests.mutation                              # every configured module
    python -m tests.mutation --module fw.engine.scheduler # one module (its untested mutants)
    python -m tests.mutation --module fw.engine.scheduler --again  # all of it, after editing it
    python -m tests.mutation --module fw.engine.sampler --sample 80  # an estimate: 80 of its mutants
    python -m tests.mutation --survivors                  # only what the last runs missed
    python -m tests.mutation --report-only                # the report of the last runs
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "build" / "mutation"
#: what the run directory holds: name -> the repository path it links to
LINKS = {"fw": "core/fw", "fw_builtins": "plugins/fw_builtins", "tests": "tests",
         "pyproject.toml": "pyproject.toml"}
#: tests a mutation run deselects (pytest -k), each of which would add seconds to every
#: engine mutant no test detects while testing nothing mutated: the parity tests' repeats
#: for more architectures (the same engine code with other model code); the engine core
#: in its own process, alone or behind a server (process plumbing: the engine it runs,
#: and the logits processors' steering, are tested in process); sleep
#: and wake (freeing and restoring weights); a structured-output backend refused at start;
#: the fused bf16 decode of large batches (the model's kernels)
DESELECT = " and ".join(f"not {name}" for name in (
    "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "test_engine_process", "test_sleep",
    "test_an_unknown_server_backend_fails_at_start_up", "bf16_batches_beyond_eight",
    "test_vllm_xargs_steer_their_request_and_bad_ones_are_400s"))
#: seconds one test may take in a mutant's run (pytest-timeout; the suite's own limit is
#: 600 s): a mutant that loops for ever is detected once this runs out, and mutmut's own
#: limit (CPU time, ~5x the estimated time of all the mutant's tests plus 150 s) let each
#: such mutant hold a core for ten minutes or more. A test slower than this would count
#: its mutant as detected, so it stays well above the slowest selected test: the suite's
#: 15 slowest test phases (11-60 s alone, `pytest --durations`, 4 December) are all
#: slow-marked or deselected.
TEST_TIMEOUT = 120
#: mutmut's exit-code meaning (mutmut.stats.status_by_exit_code), grouped for the score
DETECTED = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
            255: "timeout", -11: "crashed", -9: "crashed"}
MISSED = {0: "survived", 5: "no tests", 33: "no tests"}


def pytest_configure(config) -> None:
    """mutmut's pytest runs load this module as a plugin (``-p tests.mutation``): each
    mutant's run is forked from a process that has imported torch and the tests, and
    pytest ends every session with full garbage collections, ~2 s over that heap. Frozen,
    the heap is skipped and they take milliseconds."""
    gc.freeze()


def pytest_collection_modifyitems(session, config, items) -> None:
    """mutmut hands a mutant's tests to pytest as node ids in set order, and pytest runs
    them in the order given: tests of different files interleave, and every switch of
    file tears down and rebuilds that file's module-scoped fixtures (an engine, a
    checkpoint), several times per mutant. Grouped back by file, in the file's own
    order, each fixture is built once; the files whose tests took least time in the
    stats run go first, so a mutant a quick test detects is stopped (``-x``) before the
    slow files start."""
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    try:
        from mutmut.state import state
    except ImportError:
        return
    seconds_by_file: Counter = Counter()
    for item in items:
        seconds_by_file[item.location[0]] += state().duration_by_test.get(item.nodeid, 0.0)
    items.sort(key=lambda item: (seconds_by_file[item.location[0]], item.location[0], item.location[1] or 0))


def pytest_runtest_makereport(item, call) -> None:
    """mutmut times a test by its call phase only, but fw's engine tests spend most of
    their time in fixtures (building an engine, a checkpoint, transformers' answer). Its
    limits (15x the estimate) then cut a surviving mutant's run short, and a cut run
    counts as a timeout, i.e. as detected. The setup and teardown go into the record
    too, so a mutant no test detects is reported as surviving. In a mutant's own run
    the record is a copy the run throws away."""
    if call.when == "call":
        return
    try:
        from mutmut.state import state
    except ImportError:
        return
    state().duration_by_test[item.nodeid] += call.duration


def stage(root: Path = STAGE, repo: Path = REPO) -> Path:
    """Make (or refresh) the run directory's links; returns it."""
    root.mkdir(parents=True, exist_ok=True)
    for name, target in LINKS.items():
        link = root / name
        if link.is_symlink() and Path(os.readlink(link)) == repo / target:
            continue
        if link.is_symlink() or link.is_file():
            link.unlink()
        link.symlink_to(repo / target)
    return root


def environment(root: Path = STAGE, repo: Path = REPO) -> dict[str, str]:
    """The run's environment: the mutated copies first (subprocesses a test starts import
    them too), then fw_kernels from the repository; ``DESELECT`` and ``TEST_TIMEOUT``
    for pytest."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "mutants"), str(repo / "kernels")])
    env["PYTEST_ADDOPTS"] = f"-k '{DESELECT}' --timeout={TEST_TIMEOUT}"
    env.setdefault("TRITON_INTERPRET", "1")
    return env


def module_pattern(module: str) -> str:
    """``fw.engine.scheduler`` or ``core/fw/engine/scheduler.py`` -> mutmut's name glob."""
    path = Path(module)
    if path.suffix == ".py":
        parts = path.with_suffix("").parts
        parts = parts[1:] if parts[0] in ("core", "plugins") else parts
        module = ".".join(parts)
    return f"{module}.*"


def mutants_to_run(results: list[ModuleResult], modules: list[str], *, survivors: bool = False,
                   again: bool = False, sample: int | None = None) -> list[str]:
    """mutmut's arguments. None at all lets it carry on over every configured module (the
    untested mutants, and those of functions edited since). Naming mutants makes it test
    them whatever their result, so for modules it names the untested ones, unless
    ``again`` (a module never run yet is named by a glob: its mutants do not exist yet).
    ``sample`` names that many of each module's untested mutants, drawn at random with a
    fixed seed: an estimate of a module's score in a fraction of the time (an engine
    module's full run takes hours on two cores), carried on by later runs."""
    wanted = {module_pattern(m)[:-2] for m in modules}
    if survivors:
        return [name for r in results if r.part_of(wanted) for name in r.missed]
    names = []
    for module in modules:
        mine = [r for r in results if r.part_of({module_pattern(module)[:-2]})]
        if again or not mine:
            names.append(module_pattern(module))
            continue
        unchecked = sorted(name for r in mine for name in r.unchecked)
        if sample is not None and sample < len(unchecked):
            unchecked = random.Random(0).sample(unchecked, sample)
        names += unchecked
    return names


def forget_test_associations(root: Path = STAGE) -> None:
    """mutmut records which tests reach which function once per test: a function added
    or renamed later is tied only to tests written after it, so its mutants skip older
    tests that would catch them. Without the record, the next run collects it again
    over every selected test (as long as a full test run)."""
    (root / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)


def run_mutmut(patterns: list[str], jobs: int, root: Path = STAGE) -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", str(jobs), *patterns]
    return subprocess.run(command, cwd=root, env=environment(root)).returncode


@dataclass
class ModuleResult:
    module: str
    statuses: Counter = field(default_factory=Counter)
    #: mutant name -> status, for those no test noticed (and any mutmut could not judge)
    missed: dict[str, str] = field(default_factory=dict)
    #: mutants not tested yet
    unchecked: list[str] = field(default_factory=list)

    def part_of(self, modules: set[str]) -> bool:
        """Whether this module is one of ``modules`` or inside one of those packages (all if empty)."""
        return not modules or any(self.module == m or self.module.startswith(m + ".") for m in modules)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def detected(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in DETECTED.values())

    @property
    def score(self) -> float:
        judged = self.total - self.statuses["not checked"] - self.statuses["skipped"]
        return 100.0 * self.detected / judged if judged else 0.0


def read_results(root: Path = STAGE) -> list[ModuleResult]:
    """One result per mutated module, from mutmut's ``.meta`` files (mutmut keeps those of
    a module that no longer exists: they are not part of the score)."""
    results = []
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        relative = meta.relative_to(root / "mutants").with_suffix("").with_suffix("")
        if not (root / relative).with_suffix(".py").exists():
            continue
        result = ModuleResult(".".join(relative.parts))
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code is None:
                status = "not checked"
                result.unchecked.append(name)
            elif code == 34:
                status = "skipped"
            else:
                status = DETECTED.get(code) or MISSED.get(code) or "suspicious"
            result.statuses[status] += 1
            if status not in DETECTED.values() and status not in ("not checked", "skipped"):
                result.missed[name] = status
        if result.total:
            results.append(result)
    return results


def diffs(names: list[str], root: Path = STAGE) -> dict[str, str]:
    """Each mutant's diff, as ``mutmut show`` prints it (run where mutmut's config is)."""
    if not names:
        return {}
    code = ("import json, sys\n"
            "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
            "print(json.dumps({n: get_diff_for_mutant(n) for n in json.load(sys.stdin)}))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=environment(root), input=json.dumps(names),
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def report(results: list[ModuleResult], diff_by_name: dict[str, str]) -> str:
    """Markdown: the score per module and overall, then every survivor with its diff."""
    lines = ["# Mutation testing report", "",
             "| module | mutants | killed | timeout | survived | no tests | other | score |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    overall = ModuleResult("all")
    for r in results:
        s = r.statuses
        other = r.total - s["killed"] - s["timeout"] - s["survived"] - s["no tests"]
        lines.append(f"| {r.module} | {r.total} | {s['killed']} | {s['timeout']} | {s['survived']} | "
                     f"{s['no tests']} | {other} | {r.score:.1f}% |")
        overall.statuses.update(s)
    lines += ["", f"Overall: {overall.detected} of {overall.total} mutants detected, score {overall.score:.1f}%.",
              "", "The score counts killed, timed-out and crashed mutants as detected, out of all that ran.", ""]
    for r in results:
        if not r.missed:
            continue
        lines += [f"## {r.module}: {len(r.missed)} not detected", ""]
        for name, status in r.missed.items():
            lines += [f"### {name} ({status})", "", "```diff", diff_by_name.get(name, "(no diff)").strip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", default=[],
                        help="only this module (fw.engine.scheduler or core/fw/engine/scheduler.py); repeatable")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="mutants tested at once (default: half the CPUs)")
    parser.add_argument("--again", action="store_true",
                        help="with --module: test every mutant of the modules again, not only the untested ones")
    parser.add_argument("--survivors", action="store_true",
                        help="test again only the mutants the last runs did not detect (after adding tests)")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="with --module: test N of each module's untested mutants, drawn at random")
    parser.add_argument("--fresh-stats", action="store_true",
                        help="find again which tests reach which function (after functions were added or renamed)")
    parser.add_argument("--report-only", action="store_true", help="write the report of the runs so far")
    parser.add_argument("--report", type=Path, default=STAGE / "report.md", help="where the report goes")
    args = parser.parse_args(argv)
    if args.sample is not None and (args.sample < 1 or not args.module or args.again or args.survivors
                                    or args.report_only):
        parser.error("--sample N (N >= 1) draws from the untested mutants of the --module(s) named: "
                     "not with --again, --survivors or --report-only")
    root = stage()
    wanted = {module_pattern(m)[:-2] for m in args.module}
    if args.fresh_stats:
        forget_test_associations(root)
    if not args.report_only:
        patterns = mutants_to_run(read_results(root), args.module, survivors=args.survivors, again=args.again,
                                  sample=args.sample)
        if args.survivors and not patterns:
            print("no survivors to test again")
        code = run_mutmut(patterns, args.jobs, root) if patterns or not (args.survivors or args.module) else 0
        if code != 0:
            print(f"mutmut exited with {code}", file=sys.stderr)
            return code
    results = read_results(root)
    results = [r for r in results if r.part_of(wanted)]
    names = [name for r in results for name in r.missed]
    args.report.write_text(report(results, diffs(names, root)))
    for r in results:
        print(f"{r.module:45} {r.total:5} mutants  {r.score:5.1f}%  ({len(r.missed)} not detected)")
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
