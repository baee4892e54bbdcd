"""Hermes-style tool calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.

Used by Nous Hermes 2 Pro / 3, Qwen 2.5 / Qwen 3 and many fine-tunes. Text outside
the tags is content; several tagged calls may follow each other.

Decisions for imperfect output:

* what follows ``<tool_call>`` must be one JSON object with a string ``name`` and an
  object (or a JSON string of an object) as ``arguments``, then ``</tool_call>``;
  otherwise the text is returned as content, without the tags (markers never reach
  the client: see ``ToolParser``). The object is read as JSON, so a ``</tool_call>``
  inside an argument string does not end the call;
* a missing (or cut-off) ``</tool_call>`` at the end of the output is forgiven when the
  call's JSON is complete; JSON cut off by the end of the output is content: a half
  call is not a call;
* text after ``<tool_call>`` that cannot start a call is decided as content at once,
  so prose that mentions the tag is not held back until the end of the stream.
"""

from __future__ import annotations

from fw.parsing.scan import BracketScanner
from fw.parsing.text import skip_ws, split_at_marker
from fw.parsing.tool_parser import ToolParser, call_from_json

START = "<tool_call>"
END = "</tool_call>"


class HermesToolParser(ToolParser):
    """``--tool-call-parser hermes``."""

    special_tokens = (START, END)

    def __init__(self, tokenizer=None, tools=None):
        super().__init__(tokenizer, tools)
        self._scanner: BracketScanner | None = None

    def _step(self, text: str, final: bool) -> int | None:
        if not text.startswith(START):
            safe, _ = split_at_marker(text, START, final)
            if not safe:
                return None
            self._emit_content(text[:safe])
            return safe
        start = skip_ws(text, len(START))
        if start == len(text):
            return self._give_up(text, start) if final else None
        if text[start] != "{":
            return self._give_up(text, start)
        if self._scanner is None:
            self._scanner = BracketScanner(start)
        end = self._scanner.end(text)
        if end is None:
            return self._give_up(text, len(text)) if final else None
        after = skip_ws(text, end)
        if text.startswith(END, after):
            taken = after + len(END)
        elif END.startswith(text[after:]):  # the end tag may still come, or was cut off
            if not final:
                return None
            taken = len(text)
        else:
            return self._give_up(text, end)
        self._scanner = None
        call = call_from_json(text[start:end])
        if call is None:
            return self._give_up(text, taken)
        self._emit_call(*call)
        return taken

    def _give_up(self, text: str, end: int) -> int:
        """Not a call after all: the text up to ``end`` is content."""
        self._scanner = None
        self._emit_content(text[:end])
        return end
