"""The installed parsers: found by name, and streaming-safe by fw's parser test kit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fw.parsing.testkit import check_output_parser, check_reasoning_parser, check_tool_parser
from fw_plugin_example_parsers.bracket_reasoning import BracketReasoningParser
from fw_plugin_example_parsers.xml_tools import XmlToolParser

WEATHER = '<tool name="get_weather">\n<arg name="city">Paris</arg>\n<arg name="days">3</arg>\n</tool>'


def calls(parsed):
    return [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls]


def test_fw_register_tool_parsers_and_fw_register_reasoning_parsers_resolve_by_name():
    from fw.plugins import registry

    assert registry("tool_parser").load("example_xml") is XmlToolParser
    assert registry("reasoning_parser").load("example_reasoning") is BracketReasoningParser
    assert registry("tool_parser").entry("example_xml").plugin == "example_parsers"


def test_fw_plugins_lists_both_names():
    fw = Path(sys.executable).with_name("fw")
    result = subprocess.run([str(fw), "plugins", "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    plugin = {p["name"]: p for p in json.loads(result.stdout)}["example_parsers"]
    assert plugin["registers"] == {"tool_parser": ["example_xml"], "reasoning_parser": ["example_reasoning"]}


def test_one_call_with_typed_arguments():
    parsed = check_tool_parser(XmlToolParser, "Let me look.\n\n" + WEATHER)
    assert parsed.content == "Let me look."
    assert calls(parsed) == [("get_weather", {"city": "Paris", "days": 3})]


def test_several_calls_and_json_values():
    text = WEATHER + '\n<tool name="book">\n<arg name="opts">{"late": true}</arg>\n</tool>\n<tool name="ping"></tool>'
    parsed = check_tool_parser(XmlToolParser, text)
    assert calls(parsed) == [("get_weather", {"city": "Paris", "days": 3}), ("book", {"opts": {"late": True}}),
                             ("ping", {})]
    assert parsed.content is None and len({c.id for c in parsed.tool_calls}) == 3


def test_malformed_or_cut_off_elements_are_content():
    for bad in ('<tool name="x"><oops/></tool>', '<tool name="9bad"></tool>', '<tool name="x"><arg name="a">1'):
        parsed = check_tool_parser(XmlToolParser, "Hi " + bad)
        assert (parsed.content, parsed.tool_calls) == ("Hi " + bad, [])
    parsed = check_tool_parser(XmlToolParser, '<tool name="x"> ' + WEATHER)
    assert parsed.content == '<tool name="x">' and calls(parsed)[0][0] == "get_weather"


def test_reasoning_block_then_answer():
    assert check_reasoning_parser(BracketReasoningParser, "[THINK]2 + 2 is 4.[/THINK]\n\nIt is 4.") == (
        "2 + 2 is 4.", "It is 4.")
    assert check_reasoning_parser(BracketReasoningParser, "No block here.") == (None, "No block here.")
    assert check_reasoning_parser(BracketReasoningParser, "[THINK]cut off") == ("cut off", None)


def test_reasoning_and_tool_calls_together():
    parsed = check_output_parser(BracketReasoningParser, XmlToolParser, "[THINK]Need weather.[/THINK]" + WEATHER)
    assert parsed.reasoning == "Need weather." and parsed.content is None
    assert calls(parsed) == [("get_weather", {"city": "Paris", "days": 3})]
