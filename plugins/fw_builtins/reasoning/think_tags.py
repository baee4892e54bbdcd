"""Reasoning between ``<think>`` and ``</think>``, the shape DeepSeek R1 and Qwen 3 share.

The models differ only in what a missing ``<think>`` means, which is the one class
attribute the concrete parsers set. Whatever that choice, an unterminated reasoning
(the output hit the length limit while thinking) stays reasoning: it was streamed as
reasoning and cannot be taken back, so ``parse()`` says the same.
"""

from __future__ import annotations

from fw.parsing.reasoning_parser import ReasoningParser
from fw.parsing.text import split_at_marker

START = "<think>"
END = "</think>"


class ThinkTagReasoningParser(ReasoningParser):
    """Text up to ``</think>`` is reasoning, the rest is content."""

    special_tokens = (START, END)
    end_marker = END

    #: Whether output that does not open with ``<think>`` is still reasoning: true for
    #: chat templates that put ``<think>`` at the end of the prompt.
    implicit_start: bool = False

    def __init__(self, tokenizer=None):
        super().__init__(tokenizer)
        #: "start" (nothing decided yet), "reasoning", or "content"
        self._phase = "start"

    def _step(self, text: str, final: bool) -> int | None:
        if self._phase == "start":
            body = text.lstrip()
            if body.startswith(START):
                self._phase = "reasoning"
                return len(text) - len(body) + len(START)
            if START.startswith(body) and not final:
                return None
            if self.implicit_start:
                self._phase = "reasoning"
            else:
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
