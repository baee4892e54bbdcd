"""``example_reasoning``: reasoning in a ``[THINK]…[/THINK]`` block at the start of the
output (the shape Mistral's Magistral models write), the answer after it.

Output that does not open with ``[THINK]`` (leading whitespace aside) has no reasoning:
all of it is content. A block the output never closes (it hit the length limit while
thinking) stays reasoning, as it was already streamed as such.
"""

from __future__ import annotations

from fw.parsing.reasoning_parser import ReasoningParser
from fw.parsing.text import split_at_marker

START = "[THINK]"
END = "[/THINK]"


class BracketReasoningParser(ReasoningParser):
    """``--reasoning-parser example_reasoning``."""

    special_tokens = (START, END)

    def __init__(self, tokenizer=None):
        super().__init__(tokenizer)
        self._phase = "start"  # then "reasoning" or "content"

    def _step(self, text: str, final: bool) -> int | None:
        if self._phase == "start":
            body = text.lstrip()
            if body.startswith(START):
                self._phase = "reasoning"
                return len(text) - len(body) + len(START)
            if START.startswith(body) and not final:
                return None  # "[TH" may still become the marker
            self._phase = "content"
            self._end_reasoning(trim_content=False)
            return 0
        if self._phase == "content":
            self._emit_content(text)
            return len(text)
        index, found = split_at_marker(text, END, final)
        if index:
            self._emit_reasoning(text[:index])
        if not found:
            return index or None
        self._phase = "content"
        self._end_reasoning()
        return index + len(END)
