"""pythonic: ``[f(a=1), g()]`` read with ``ast``, never evaluated."""

from __future__ import annotations

import json

import pytest

from fw.parsing.testkit import check_tool_parser
from fw_builtins.tool_parsers.pythonic import PythonicToolParser, parse_calls


def parse(text):
    parsed = check_tool_parser(PythonicToolParser, text)
    return parsed.content, [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls]


def test_no_call():
    assert parse("It is 12 °C in Paris.") == ("It is 12 °C in Paris.", [])


def test_one_call():
    parsed = check_tool_parser(PythonicToolParser, '[get_weather(city="Paris")]')
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("get_weather", '{"city": "Paris"}')]
    assert parsed.tool_calls[0].id.startswith("call_") and parsed.content is None


def test_several_calls():
    text = "[a(), b(x=1, y='two'), tools.c(z=[1, 2])]"
    assert parse(text) == (None, [("a", {}), ("b", {"x": 1, "y": "two"}), ("tools.c", {"z": [1, 2]})])


def test_text_before_a_call_makes_it_content():
    text = "Sure: [a()]"
    assert parse(text) == (text, [])


def test_text_after_a_call_is_content():
    assert parse("[a()]\n\nCalling it now.") == ("Calling it now.", [("a", {})])
    assert parse("[a()] [b()]") == ("[b()]", [("a", {})])  # only the list that opens the answer


def test_a_second_list_glued_to_the_first_is_content_not_more_calls():
    """Only the list that opens the answer holds calls, however the next one is written
    (here right after the first, and as long as it, so a parser still positioned for the
    first list would read the second as calls)."""
    assert parse("[a()][b()]") == ("[b()]", [("a", {})])
    assert parse("[f(x=1)][f(x=2)]") == ("[f(x=2)]", [("f", {"x": 1})])


def test_empty_strings_and_capitals():
    assert parse("[tools.X_search(q='', n=1)]\nDone.") == ("Done.", [("tools.X_search", {"q": "", "n": 1})])


def test_whitespace_may_come_before_the_list():
    assert parse("\n  [a(x='],)')]") == (None, [("a", {"x": "],)"})])


def test_content_streams_as_soon_as_it_is_not_a_call():
    parser = PythonicToolParser()
    assert parser.feed("  ").content is None  # a list may still open
    assert parser.feed("It is 12").content == "  It is 12"


@pytest.mark.parametrize("bad", [
    "[a(1)]",                    # positional arguments have no names
    "[a(**kw)]",
    "[a(x=open('f'))]",          # a call is not a literal
    "[a(x=y)]",
    "[a(x={1: 2})]",             # JSON keys are strings
    "[a(x=float('nan'))]",
    "[a(x=1e999)]",
    "[a(x=f'{y}')]",
    "[a(x=1, x=2)]",
    "[a(), 3]",
    "[]",
    "[a(x=1,]",
    "[__import__('os').system('true')]",
    "[a().b(x=1)]",              # a method of a call's result is not a function name
    "[a(x={**y})]",
    "[a(x=-True)]",              # signs apply to numbers only
    "[a(x=+'s')]",
])
def test_anything_but_literal_keyword_arguments_is_content(bad):
    assert parse(bad) == (bad, [])


def test_literals_convert_to_json():
    source = "[f(a=-1, b=+2.5, c=(1, 'x'), d={'k': [None, True]}, e=true, g=null, h=false)]"
    assert parse_calls(source) == [("f", json.dumps(
        {"a": -1, "b": 2.5, "c": [1, "x"], "d": {"k": [None, True]}, "e": True, "g": None,
         "h": False}))]


def test_unicode_and_nested_arguments():
    arguments = {"q": "naïve 東京 ☕ ']'", "filters": {"tags": ["a"], "range": {"from": 1}}}
    text = f"[search(q={arguments['q']!r}, filters={arguments['filters']!r})]"
    assert parse(text) == (None, [("search", arguments)])


def test_truncated_output_is_content():
    text = '[get_weather(city="Par'
    assert parse(text) == (text, [])


def test_deep_nesting_is_content_not_a_crash():
    text = "[f(x=" + "[" * 5000 + "]" * 5000 + ")]"
    assert parse_calls(text) is None
