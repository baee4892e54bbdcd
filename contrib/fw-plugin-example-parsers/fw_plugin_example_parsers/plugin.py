"""Registers the two parsers by import path, so loading the plugin imports neither."""

from fw import hookimpl


@hookimpl
def fw_register_tool_parsers(register):
    register("example_xml", "fw_plugin_example_parsers.xml_tools:XmlToolParser")


@hookimpl
def fw_register_reasoning_parsers(register):
    register("example_reasoning", "fw_plugin_example_parsers.bracket_reasoning:BracketReasoningParser")
