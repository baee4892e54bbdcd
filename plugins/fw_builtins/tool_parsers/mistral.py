"""Mistral tool calls, in both of the forms Mistral models write them.

* ``[TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]``: a JSON list (or a single
  object) after the marker (Mistral 7B v0.3, Mixtral, Nemo);
* ``[TOOL_CALLS]f[ARGS]{...}``, one marker per call (newer tokenizers, v11+).

Call ids are 9 random letters and digits: Mistral chat templates reject other ids when
the calls are sent back in the conversation.

Decisions for imperfect output: a list whose items are not all valid calls, a name
with characters a function name cannot have, or JSON that never closes (truncated
output) is returned as content, without its markers, and parsing carries on after it.
"""

from __future__ import annotations

import re
import secrets
import string

from fw.parsing.scan import BracketScanner
from fw.parsing.text import skip_ws, split_at_marker
from fw.parsing.tool_parser import ToolParser, call_from_object, loads_strict

MARKER = "[TOOL_CALLS]"
ARGS = "[ARGS]"
_NAME = re.compile(r"[\w.\-]*")
_ID_ALPHABET = string.ascii_letters + string.digits


class MistralToolParser(ToolParser):
    """``--tool-call-parser mistral``."""

    special_tokens = (MARKER, ARGS)

    def __init__(self, tokenizer=None, tools=None):
        super().__init__(tokenizer, tools)
        self._scanner: BracketScanner | None = None

    def _new_call_id(self) -> str:
        return "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))

    def _step(self, text: str, final: bool) -> int | None:
        if not text.startswith(MARKER):
            safe, _ = split_at_marker(text, MARKER, final)
            if not safe:
                return None
            self._emit_content(text[:safe])
            return safe
        start = skip_ws(text, len(MARKER))
        if start == len(text):
            return self._give_up(text) if final else None
        if text[start] in "[{":
            return self._json_calls(text, start, final)
        return self._named_call(text, start, final)

    def _json_calls(self, text: str, start: int, final: bool) -> int | None:
        """``[TOOL_CALLS][{...}, ...]`` or ``[TOOL_CALLS]{...}``."""
        end = self._value_end(text, start)
        if end is None:
            return self._give_up(text) if final else None
        try:
            value = loads_strict(text[start:end])
        except ValueError:
            return self._give_up(text, end)
        calls = [call_from_object(item) for item in
                 (value if isinstance(value, list) else [value])]
        if not calls or None in calls:
            return self._give_up(text, end)
        for name, arguments in calls:
            self._emit_call(name, arguments)
        return end

    def _named_call(self, text: str, start: int, final: bool) -> int | None:
        """``[TOOL_CALLS]name[ARGS]{...}``."""
        stop = _NAME.match(text, start).end()
        if not text.startswith(ARGS, stop):
            if not final and ARGS.startswith(text[stop:]):
                return None  # the name, or [ARGS], may still be arriving
            return self._give_up(text, stop)
        start_args = skip_ws(text, stop + len(ARGS))
        if start_args == len(text):
            return self._give_up(text) if final else None
        if text[start_args] != "{":
            return self._give_up(text, start_args)
        end = self._value_end(text, start_args)
        if end is None:
            return self._give_up(text) if final else None
        call = call_from_object({"name": text[start:stop], "arguments": text[start_args:end]})
        if call is None:
            return self._give_up(text, end)
        self._emit_call(*call)
        return end

    def _value_end(self, text: str, start: int) -> int | None:
        if self._scanner is None:
            self._scanner = BracketScanner(start)
        end = self._scanner.end(text)
        if end is not None:
            self._scanner = None
        return end

    def _give_up(self, text: str, end: int | None = None) -> int:
        """Not a call after all: the text up to ``end`` is content."""
        end = len(text) if end is None else end
        self._scanner = None
        self._emit_content(text[:end])
        return end

