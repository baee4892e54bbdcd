"""llama3_json: a JSON call as the response, after ``<|python_tag|>``, or after ``;``."""

from __future__ import annotations

import json

from fw.parsing.testkit import check_tool_parser
from fw_builtins.tool_parsers.llama3_json import Llama3JsonToolParser


def parse(text):
    parsed = check_tool_parser(Llama3JsonToolParser, text)
    return parsed.content, [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls]


def call(name, parameters):
    return json.dumps({"name": name, "parameters": parameters}, ensure_ascii=False)


def test_no_call():
    assert parse("Hello! How can I help?") == ("Hello! How can I help?", [])


def test_one_call_with_parameters_or_arguments():
    parsed = check_tool_parser(Llama3JsonToolParser, call("f", {"a": 1}))
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("f", '{"a": 1}')]
    assert parsed.tool_calls[0].id.startswith("call_") and parsed.content is None
    assert parse('{"name": "f", "arguments": {"a": 1}}') == (None, [("f", {"a": 1})])


def test_several_calls_separated_by_semicolons():
    text = f"<|python_tag|>{call('a', {})}; {call('b', {'x': 1})};{call('c', {})}"
    assert parse(text) == (None, [("a", {}), ("b", {"x": 1}), ("c", {})])


def test_text_before_a_call_needs_the_python_tag():
    assert parse(f"Let me check.\n<|python_tag|>{call('a', {})}") == ("Let me check.", [("a", {})])
    prose = f"The call would be {call('a', {})}."
    assert parse(prose) == (prose, [])


def test_text_after_a_call_is_content():
    assert parse(f"{call('a', {})}\n\nDone.") == ("Done.", [("a", {})])


def test_malformed_json_is_content():
    for bad in ['{"name": "a", "parameters": {"x": 1,}}',
                '<|python_tag|>{"name": "a" "parameters": {}}',
                '{"answer": 42}',
                '<|python_tag|>brave_search.call(query="weather")']:
        assert parse(bad) == (bad.replace("<|python_tag|>", ""), [])  # the marker never leaks
    text = f"{call('a', {})}; not json"
    assert parse(text) == ("; not json", [("a", {})])


def test_unicode_and_nested_parameters():
    parameters = {"q": "日本語 ☕", "opts": {"tags": ["a", {"b": [None, True, 1.5]}]}}
    assert parse(call("search", parameters)) == (None, [("search", parameters)])


def test_truncated_output_is_content():
    truncated = '<|python_tag|>{"name": "a", "parameters": {"city": "Ber'
    assert parse(truncated) == (truncated.replace("<|python_tag|>", ""), [])
    assert parse(f"{call('a', {})}; {{\"name\": \"b\"") == ('; {"name": "b"', [("a", {})])


def test_missing_end_of_message_token_is_fine():
    # Llama ends a call with <|eom_id|> or <|eot_id|>; detokenization strips them
    assert parse(f"<|python_tag|>{call('a', {})}\n") == (None, [("a", {})])


def test_marker_strings_are_declared():
    assert Llama3JsonToolParser.special_tokens == ("<|python_tag|>",)


def test_a_call_needs_its_place_to_start():
    """Only at the start, after the tag, or after ';' that follows a call."""
    assert parse(f"\n {call('a', {})}") == (None, [("a", {})])
    text = f"{call('a', {})} {call('b', {})}"
    assert parse(text) == (call("b", {}), [("a", {})])
    assert parse(f"; {call('a', {})}") == (f"; {call('a', {})}", [])


def test_parsing_goes_on_after_what_is_not_a_call():
    for not_a_call in ['<|python_tag|>brave_search.call(query="weather")', '{"answer": 42}',
                       '<|python_tag|>{"name": "a" "parameters": {}}']:
        expected = not_a_call.replace("<|python_tag|>", "")  # the marker never leaks
        assert parse(f"{not_a_call}\n<|python_tag|>{call('b', {})}") == (expected, [("b", {})])


def test_text_that_may_start_a_tag_is_content_at_the_end():
    assert parse("Answer: <|python_ta") == ("Answer: <|python_ta", [])
    assert parse("  ") == ("  ", [])


def test_llamas_own_parameters_key_wins():
    text = json.dumps({"name": "f", "parameters": {"a": 1}, "arguments": {"b": 2}})
    assert parse(text) == (None, [("f", {"a": 1})])
