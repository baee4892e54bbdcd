"""Llama 3.1+ JSON tool calls: ``{"name": "f", "parameters": {...}}``.

Llama writes a custom-tool call as the whole response, a JSON object (``parameters``;
``arguments`` is accepted too), optionally after ``<|python_tag|>``. Several calls are
separated by ``;``. A call is recognised only where one can start: at the beginning of
the response, after ``<|python_tag|>``, or after ``;`` following a call. A ``{`` in the
middle of prose is prose.

Decisions for imperfect output: JSON that is valid but not a call (a JSON answer),
malformed JSON, and JSON cut off at the end of the output are returned as content,
without ``<|python_tag|>`` (markers never reach the client); so is Llama's built-in
tool syntax after the tag
(``brave_search.call(query=...)``), which is not a custom-tool call.
"""

from __future__ import annotations

from fw.parsing.scan import BracketScanner
from fw.parsing.text import skip_ws, split_at_marker
from fw.parsing.tool_parser import ToolParser, call_from_json

TAG = "<|python_tag|>"
_ARGUMENT_KEYS = ("parameters", "arguments")


class Llama3JsonToolParser(ToolParser):
    """``--tool-call-parser llama3_json`` (alias ``llama4_json``)."""

    special_tokens = (TAG,)

    def __init__(self, tokenizer=None, tools=None):
        super().__init__(tokenizer, tools)
        #: "start" (nothing decided yet), "content", or "after_call"
        self._mode = "start"
        self._scanner: BracketScanner | None = None

    def _step(self, text: str, final: bool) -> int | None:
        if self._mode == "content":
            if text.startswith(TAG):
                return self._candidate(text, len(TAG), final)
            safe, _ = split_at_marker(text, TAG, final)
            if not safe:
                return None
            self._emit_content(text[:safe])
            return safe
        first = skip_ws(text, 0)
        if first == len(text):
            if not final:
                return None
            self._emit_content(text)
            return len(text)
        if self._mode == "start" and text[first] == "{":
            return self._candidate(text, 0, final)
        if self._mode == "after_call" and text[first] == ";":
            return self._candidate(text, first + 1, final)
        self._mode = "content"
        return 0

    def _candidate(self, text: str, opening: int, final: bool) -> int | None:
        """A possible call: ``text[:opening]`` opens it (tag, ``;`` or nothing), then JSON."""
        start = skip_ws(text, opening)
        if start == len(text):
            return self._give_up(text) if final else None
        if text[start] != "{":
            return self._give_up(text, start)
        if self._scanner is None:
            self._scanner = BracketScanner(start)
        end = self._scanner.end(text)
        if end is None:
            return self._give_up(text) if final else None
        self._scanner = None
        call = call_from_json(text[start:end], _ARGUMENT_KEYS)
        if call is None:
            return self._give_up(text, end)
        self._emit_call(*call)
        self._mode = "after_call"
        return end

    def _give_up(self, text: str, end: int | None = None) -> int:
        """Not a call after all: the text up to ``end`` is content."""
        end = len(text) if end is None else end
        self._scanner = None
        self._mode = "content"
        self._emit_content(text[:end])
        return end
