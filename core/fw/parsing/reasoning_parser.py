"""The reasoning parser contract: split a model's thinking from its answer.

Reasoning is split off first; only the content goes on to the tool parser (see
``fw.parsing.pipeline``). Like tool parsers, one instance serves one response:
``feed()`` each piece of text, ``finish()`` once, or ``parse()`` a whole text (defined
as feed-then-finish). ``reasoning_ended`` tells structured outputs when to start
constraining: only the content after the reasoning must match the grammar.

Whitespace at the edges of the reasoning, and between the reasoning and the content,
is padding and is dropped.
"""

from __future__ import annotations

from typing import Any

from fw.parsing.messages import ReasoningDelta
from fw.parsing.stream import IncrementalParser
from fw.parsing.text import EdgeTrim


class ReasoningParser(IncrementalParser):
    """Base class of reasoning parsers: subclasses implement ``_step``.

    ``_step`` (see ``IncrementalParser``) reports what it decides through
    ``_emit_reasoning``, ``_emit_content`` and ``_end_reasoning``.
    """

    #: Marker strings the parser must see (kept by the detokenizer, as for tool parsers).
    special_tokens: tuple[str, ...] = ()
    #: The text that ends the reasoning, if there is one fixed marker. The engine starts
    #: a structured-output constraint only once the model has written it.
    end_marker: str | None = None

    def __init__(self, tokenizer: Any = None):
        super().__init__()
        #: the model's Hugging Face tokenizer; None when parsing text alone (tests)
        self.tokenizer = tokenizer
        self._reasoning = EdgeTrim(trim_start=True)
        self._content = EdgeTrim()
        self._ended = False
        self._delta = ReasoningDelta()

    @property
    def reasoning_ended(self) -> bool:
        """True once the text seen so far has ended the reasoning (or has none)."""
        return self._ended

    def feed(self, delta_text: str) -> ReasoningDelta:
        """Take the next piece of generated text; return what is now decided."""
        self._push(delta_text, final=False)
        return self._take()

    def finish(self) -> ReasoningDelta:
        """End of stream: decide and return everything still held back."""
        self._push("", final=True)
        self._add_reasoning(self._reasoning.flush())
        self._add_content(self._content.flush())
        return self._take()

    def parse(self, text: str) -> tuple[str | None, str | None]:
        """``(reasoning, content)`` of a whole text; None for an empty part."""
        self._check_fresh()
        first, last = self.feed(text), self.finish()
        reasoning = (first.reasoning or "") + (last.reasoning or "")
        content = (first.content or "") + (last.content or "")
        return reasoning or None, content or None

    # -- for subclasses ------------------------------------------------------------------

    def _emit_reasoning(self, text: str) -> None:
        self._add_reasoning(self._reasoning.push(text))

    def _emit_content(self, text: str) -> None:
        self._add_content(self._content.push(text))

    def _end_reasoning(self, *, trim_content: bool = True) -> None:
        """The reasoning is over; ``trim_content`` drops the padding after its end tag."""
        self._reasoning.cut()
        if trim_content:
            self._content.cut()
        self._ended = True

    # -- internals -----------------------------------------------------------------------

    def _add_reasoning(self, text: str) -> None:
        if text:
            self._delta.reasoning = (self._delta.reasoning or "") + text

    def _add_content(self, text: str) -> None:
        if text:
            self._delta.content = (self._delta.content or "") + text

    def _take(self) -> ReasoningDelta:
        delta, self._delta = self._delta, ReasoningDelta()
        return delta
