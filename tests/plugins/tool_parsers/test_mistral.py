"""mistral: ``[TOOL_CALLS][{...}]`` and ``[TOOL_CALLS]name[ARGS]{...}``, 9-character ids."""

from __future__ import annotations

import json
import re

import pytest

from fw.parsing.testkit import check_tool_parser
from fw_builtins.tool_parsers.mistral import MistralToolParser


def parse(text):
    parsed = check_tool_parser(MistralToolParser, text)
    return parsed.content, [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls]


def as_list(*calls):
    return "[TOOL_CALLS] " + json.dumps([{"name": n, "arguments": a} for n, a in calls])


def test_no_call():
    assert parse("Je ne sais pas.") == ("Je ne sais pas.", [])


def test_one_call_in_each_form_has_a_nine_character_id():
    for text in (as_list(("f", {"a": 1})), '[TOOL_CALLS]f[ARGS]{"a": 1}',
                 '[TOOL_CALLS]{"name": "f", "arguments": {"a": 1}}'):
        parsed = check_tool_parser(MistralToolParser, text)
        assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("f", '{"a": 1}')]
        assert re.fullmatch(r"[A-Za-z0-9]{9}", parsed.tool_calls[0].id)
        assert parsed.content is None and parsed.tools_called


def test_several_calls():
    assert parse(as_list(("a", {}), ("b", {"x": [1]}))) == (None, [("a", {}), ("b", {"x": [1]})])
    text = '[TOOL_CALLS]a[ARGS]{}\n[TOOL_CALLS]b[ARGS] {"x": [1]}'
    assert parse(text) == (None, [("a", {}), ("b", {"x": [1]})])


def test_text_before_a_call():
    assert parse("Checking.\n" + as_list(("a", {}))) == ("Checking.", [("a", {})])
    assert parse('Checking.[TOOL_CALLS]a[ARGS]{}') == ("Checking.", [("a", {})])


def unmarked(text: str) -> str:
    """Content as a client sees it: [TOOL_CALLS] and [ARGS] never leak into it."""
    return text.replace("[TOOL_CALLS]", "").replace("[ARGS]", "")


MALFORMED = ['[TOOL_CALLS] [{"name": "a", "arguments": {"x": 1,}}]',
             '[TOOL_CALLS] [{"name": "a", "arguments": {}}, {"arguments": {}}]',
             '[TOOL_CALLS] []',
             '[TOOL_CALLS] {"x": 1}',
             '[TOOL_CALLS]a[ARGS]{"x": }',
             '[TOOL_CALLS]a[ARGS][1, 2]',
             '[TOOL_CALLS]not a name[ARGS]{}']


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_json_is_content_without_the_markers(bad):
    assert parse(bad) == (unmarked(bad), [])


@pytest.mark.parametrize("bad", MALFORMED)
def test_parsing_goes_on_after_a_malformed_call(bad):
    assert parse(bad + '[TOOL_CALLS]X_ray[ARGS]{"y": 2}') == (unmarked(bad), [("X_ray", {"y": 2})])


def test_unicode_and_nested_arguments():
    arguments = {"q": "café ☕ «guillemets» ]}", "opts": {"langs": ["fr", "日本"], "n": {"k": None}}}
    assert parse(as_list(("search", arguments))) == (None, [("search", arguments)])
    text = "[TOOL_CALLS]search[ARGS]" + json.dumps(arguments, ensure_ascii=False)
    assert parse(text) == (None, [("search", arguments)])


def test_truncated_output_is_content():
    for truncated in ['[TOOL_CALLS] [{"name": "a", "arguments": {"x": "Par',
                      '[TOOL_CALLS]get_wea', '[TOOL_CALLS]a[ARGS]{"x": 1', '[TOOL_CALLS] ', '[TOOL_CALLS]a[ARGS] ']:
        assert parse("Ok. " + truncated) == ("Ok. " + unmarked(truncated), [])


def test_missing_closing_bracket_of_the_list_is_content():
    text = '[TOOL_CALLS] [{"name": "a", "arguments": {}}'
    assert parse(text) == (unmarked(text), [])


def test_streaming_waits_for_the_whole_call():
    parser = MistralToolParser()
    assert parser.feed("Sure[TOOL_").content == "Sure"
    assert not parser.feed("CALLS]get_weather[AR")
    assert not parser.feed('GS]{"city": "Par')
    delta = parser.feed('is"}')
    assert [(c.name, c.arguments) for c in delta.tool_calls] == [("get_weather", '{"city": "Paris"}')]


def test_marker_strings_are_declared():
    assert MistralToolParser.special_tokens == ("[TOOL_CALLS]", "[ARGS]")
