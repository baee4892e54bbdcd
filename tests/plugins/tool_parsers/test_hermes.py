"""hermes: ``<tool_call>{json}</tool_call>``. Every case also runs the streaming property."""

from __future__ import annotations

import json

from fw.parsing.testkit import check_tool_parser
from fw_builtins.tool_parsers.hermes import HermesToolParser


def parse(text):
    parsed = check_tool_parser(HermesToolParser, text)
    return parsed.content, [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls]


def call(name, arguments):
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments})}\n</tool_call>'


def test_no_call():
    assert parse("Paris is the capital of France.") == ("Paris is the capital of France.", [])


def test_one_call():
    parsed = check_tool_parser(HermesToolParser, call("get_weather", {"city": "Paris"}))
    assert parsed.content is None and parsed.tools_called
    assert parsed.tool_calls[0].id.startswith("call_") and parsed.tool_calls[0].type == "function"
    assert (parsed.tool_calls[0].name, parsed.tool_calls[0].arguments) == (
        "get_weather", '{"city": "Paris"}')


def test_several_calls_get_distinct_ids():
    text = call("a", {"x": 1}) + "\n" + call("b", {}) + call("c", {"y": [2]})
    parsed = check_tool_parser(HermesToolParser, text)
    assert [c.name for c in parsed.tool_calls] == ["a", "b", "c"]
    assert len({c.id for c in parsed.tool_calls}) == 3 and parsed.content is None


def test_text_before_and_between_calls():
    text = "Let me check.\n\n" + call("a", {}) + "\nAnd also:\n" + call("b", {})
    # padding next to a call goes; the whitespace between the two sentences stays
    assert parse(text) == ("Let me check.\n\n\nAnd also:", [("a", {}), ("b", {})])


def unmarked(text: str) -> str:
    """Content as a client sees it: the parser's marker tokens never leak into it."""
    return text.replace("<tool_call>", "").replace("</tool_call>", "")


def test_malformed_json_inside_the_tags_is_content_without_the_tags():
    bad = '<tool_call>\n{"name": "a", "arguments": {"x": 1,}}\n</tool_call>'
    assert parse("Hi " + bad) == ('Hi \n{"name": "a", "arguments": {"x": 1,}}\n', [])
    not_a_call = '<tool_call>{"arguments": {}}</tool_call>'
    assert parse(not_a_call + call("b", {})) == (unmarked(not_a_call), [("b", {})])


def test_unicode_and_nested_arguments():
    arguments = {"city": "東京", "note": "naïve ☕ \"quoted\" \\ </tool_call>",
                 "filters": {"days": [1, 2, {"deep": {"deeper": None}}], "ok": True}}
    assert parse(call("f", arguments)) == (None, [("f", arguments)])


def test_arguments_as_a_json_string_and_missing_arguments():
    text = '<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>'
    assert parse(text) == (None, [("f", {"a": 1})])
    assert parse('<tool_call>{"name": "now"}</tool_call>') == (None, [("now", {})])


def test_json_followed_by_anything_but_the_end_tag_is_content():
    text = '<tool_call>{"name": "a", "arguments": {}} oops</tool_call> ok'
    assert parse(text) == (unmarked(text), [])


def test_prose_after_the_tag_is_not_held_back():
    parser = HermesToolParser()
    assert parser.feed("Wrap calls in <tool_call> tags").content == "Wrap calls in  tags"


def test_a_stray_end_tag_never_reaches_the_content():
    assert parse("Done.</tool_call>") == ("Done.", [])
    parser = HermesToolParser()
    assert [parser.feed(piece).content for piece in ("Done.</tool", "_call> ok")] == ["Done.", " ok"]


def test_truncated_output_is_content():
    truncated = '<tool_call>\n{"name": "f", "arguments": {"city": "Par'
    assert parse("Sure. " + truncated) == ("Sure. " + unmarked(truncated), [])


def test_missing_end_tag_after_a_complete_call_is_forgiven():
    text = call("a", {}) + '\n<tool_call>\n{"name": "b", "arguments": {"x": 1}}\n'
    assert parse(text) == (None, [("a", {}), ("b", {"x": 1})])
    assert parse(text + "</tool_") == (None, [("a", {}), ("b", {"x": 1})])


def test_streaming_holds_only_what_may_be_a_marker():
    parser = HermesToolParser()
    assert parser.feed("Let me check").content == "Let me check"
    assert parser.feed(" <tool").content is None  # " " and "<tool" wait
    assert parser.feed("s> are fun ").content == " <tools> are fun"
    assert not parser.feed('<tool_call>{"name": "f", "arguments": {}}')
    delta = parser.feed("</tool_call>")
    assert [(c.index, c.name, c.arguments) for c in delta.tool_calls] == [(0, "f", "{}")]
    assert delta.content is None and not parser.finish()


def test_marker_strings_are_declared():
    assert HermesToolParser.special_tokens == ("<tool_call>", "</tool_call>")


def test_text_before_a_call_streams_before_it():
    """What looked like the start of the marker, then was not, is sent with the text before
    the call, not after it."""
    parser = HermesToolParser()
    delta = parser.feed(f"Use a <tool{call('f', {})}")
    assert delta.content == "Use a <tool" and [c.name for c in delta.tool_calls] == ["f"]
    assert not parser.finish()
