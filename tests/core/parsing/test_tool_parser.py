"""The JSON helpers that tool parsers (built-in and plugins) share: their error messages."""

from __future__ import annotations

import pytest

from fw.parsing.tool_parser import dump_arguments, loads_strict


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_loads_strict_names_the_non_standard_constant_it_rejects(constant):
    """RFC 8259 JSON has no NaN or Infinity; the error says which one was found."""
    with pytest.raises(ValueError) as info:
        loads_strict('{"x": %s}' % constant)
    assert str(info.value) == f"{constant} is not valid JSON"


def test_loads_strict_reports_too_deep_nesting_as_a_value_error():
    """Python's own parser would raise RecursionError; callers catch only ValueError."""
    with pytest.raises(ValueError) as info:
        loads_strict("[" * 100_000 + "]" * 100_000)
    assert str(info.value) == "JSON nested too deeply"


def test_dump_arguments_reports_too_deep_nesting_as_a_value_error():
    """Arguments nested past the interpreter's recursion limit cannot be sent as JSON."""
    arguments: dict = {}
    inner = arguments
    for _ in range(100_000):
        inner["a"] = {}
        inner = inner["a"]
    with pytest.raises(ValueError) as info:
        dump_arguments(arguments)
    assert str(info.value) == "arguments nested too deeply"
