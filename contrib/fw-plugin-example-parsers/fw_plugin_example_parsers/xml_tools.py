"""``example_xml``: tool calls written as XML-like elements, one element per argument::

    <tool name="get_weather">
    <arg name="city">Paris</arg>
    <arg name="days">3</arg>
    </tool>

An argument's text is decoded as JSON when it is valid JSON (``3``, ``true``,
``{"a": 1}``) and kept as a string otherwise (``Paris``); a value that must stay the
string ``"3"`` is written as the JSON string ``"\\"3\\""``. If an argument repeats, the
last one counts.

A ``<tool name="`` that does not end in a well-formed element by ``</tool>`` (or by the
end of the output) is content, unchanged. The decision is made only on complete
elements, so streamed and non-streamed parses agree for every chunking.
"""

from __future__ import annotations

import json
import re

from fw.parsing.text import split_at_marker
from fw.parsing.tool_parser import ToolParser, dump_arguments

START = '<tool name="'
END = "</tool>"
_NAME = r"[A-Za-z_][\w.-]*"
_CALL = re.compile(rf'<tool name="({_NAME})">\s*((?:<arg name="{_NAME}">.*?</arg>\s*)*)</tool>', re.S)
_ARG = re.compile(rf'<arg name="({_NAME})">(.*?)</arg>', re.S)


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


class XmlToolParser(ToolParser):
    """``--tool-call-parser example_xml``."""

    def _step(self, text: str, final: bool) -> int | None:
        if not text.startswith(START):
            safe, _ = split_at_marker(text, START, final)
            if not safe:
                return None
            self._emit_content(text[:safe])
            return safe
        end = text.find(END)
        if end < 0 and not final:
            return None  # the element is still being written
        element = text[:end + len(END)] if end >= 0 else ""
        match = _CALL.fullmatch(element)
        if match is None:
            # Not a call: the start marker is content; what follows is scanned again.
            self._emit_content(START)
            return len(START)
        arguments = {name: _value(value) for name, value in _ARG.findall(match.group(2))}
        self._emit_call(match.group(1), dump_arguments(arguments))
        return len(element)
