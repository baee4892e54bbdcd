"""One response's parsers in the order that matters: reasoning first, then tools.

A tool call written inside the model's thinking is not a call, so the tool parser only
ever sees the content the reasoning parser lets through. The server builds one
``OutputParser`` per choice and uses its deltas and parsed messages directly.
"""

from __future__ import annotations

from fw.parsing.messages import DeltaMessage, ParsedMessage, ReasoningDelta, merge_deltas
from fw.parsing.reasoning_parser import ReasoningParser
from fw.parsing.tool_parser import ToolParser


class OutputParser:
    """Reasoning parser, then tool parser; either may be absent."""

    def __init__(self, reasoning: ReasoningParser | None = None,
                 tools: ToolParser | None = None):
        self.reasoning_parser = reasoning
        self.tool_parser = tools
        self._started = False

    @property
    def reasoning_ended(self) -> bool:
        """True once content (the part structured outputs constrain) has begun."""
        return self.reasoning_parser is None or self.reasoning_parser.reasoning_ended

    @property
    def special_tokens(self) -> tuple[str, ...]:
        """Every marker either parser needs kept by the detokenizer."""
        parsers = (self.reasoning_parser, self.tool_parser)
        return tuple(t for p in parsers if p is not None for t in p.special_tokens)

    def feed(self, delta_text: str) -> DeltaMessage:
        """Take the next piece of generated text; return what is now decided."""
        self._started = True
        if self.reasoning_parser is None:
            return self._tools(ReasoningDelta(content=delta_text), final=False)
        return self._tools(self.reasoning_parser.feed(delta_text), final=False)

    def finish(self) -> DeltaMessage:
        """End of stream: decide and return everything still held back."""
        if self.reasoning_parser is None:
            return self._tools(ReasoningDelta(), final=True)
        return self._tools(self.reasoning_parser.finish(), final=True)

    def parse(self, text: str) -> ParsedMessage:
        """The non-streamed result: ``feed(text)`` then ``finish()`` on fresh parsers."""
        if self._started:
            raise RuntimeError("OutputParser.parse() needs fresh parsers")
        return merge_deltas([self.feed(text), self.finish()])

    def _tools(self, split: ReasoningDelta, final: bool) -> DeltaMessage:
        if self.tool_parser is None:
            return DeltaMessage(content=split.content, reasoning=split.reasoning)
        delta = self.tool_parser.feed(split.content or "")
        if final:
            last = self.tool_parser.finish()
            delta.content = (delta.content or "") + (last.content or "") or None
            delta.tool_calls += last.tool_calls
        delta.reasoning = split.reasoning
        return delta
