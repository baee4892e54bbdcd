"""Every hook has a test, datasette-style: some test function in tests/ or in a contrib
plugin's tests names the hook, in its name or its docstring, saying it exercises it.

A hook added to hookspecs.py without such a test fails here. Name the new test after
the hook (``test_fw_register_x_...``) or mention the hook in its docstring.
"""

from __future__ import annotations

import ast
from pathlib import Path

from fw import hookspecs

REPO = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("fw_") and callable(getattr(hookspecs, name)))


def scanned_files() -> list[Path]:
    return sorted([*(REPO / "tests").rglob("*.py"), *(REPO / "contrib").glob("*/tests/**/*.py")])


def hooks_named_by_tests(source: str, hooks: list[str]) -> dict[str, list[str]]:
    """hook -> the test functions in ``source`` whose name or docstring names it."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
            said = node.name + " " + (ast.get_docstring(node) or "")
            for hook in hooks:
                if hook in said:
                    found.setdefault(hook, []).append(node.name)
    return found


def test_the_scan_reads_names_and_docstrings_only():
    source = '''
def test_fw_register_models_loads():
    pass

def test_other():
    """Exercises fw_asgi_middleware."""

def helper_fw_register_commands():
    pass

def test_body_only():
    fw_register_load_formats = 1
'''
    assert hooks_named_by_tests(source, HOOKS) == {
        "fw_register_models": ["test_fw_register_models_loads"], "fw_asgi_middleware": ["test_other"]}


def test_every_hook_has_a_test():
    tested: dict[str, list[str]] = {}
    for path in scanned_files():
        if path == Path(__file__):
            continue
        for hook, tests in hooks_named_by_tests(path.read_text(), HOOKS).items():
            tested.setdefault(hook, []).extend(f"{path.relative_to(REPO)}::{t}" for t in tests)
    missing = [hook for hook in HOOKS if hook not in tested]
    assert not missing, (
        f"hooks without a test: {', '.join(missing)}. Write a test that exercises each one and name "
        "the hook in the test's name or docstring.")
