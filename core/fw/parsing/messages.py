"""What parsers produce: stream deltas and the final parsed message.

The shapes follow OpenAI's chat completion ``delta`` (streaming) and ``message``
(non-streaming), so the server maps them field for field. ``merge_deltas`` is the single
definition of how deltas add up to a message: ``parse()`` is built on it, and the test
kit uses it to hold every parser to the same contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


class ParserContractError(AssertionError):
    """A parser produced deltas that break the streaming contract (a parser bug)."""


@dataclass
class ToolCallDelta:
    """One piece of one tool call, as a streamed ``delta.tool_calls[i]``.

    The first delta of a call carries ``index``, ``id``, ``type`` and ``name`` (and may
    carry the start of ``arguments``); later deltas of the same call carry only
    ``index`` and an ``arguments`` fragment.
    """

    index: int
    id: str | None = None
    type: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass
class DeltaMessage:
    """What one ``feed()`` or ``finish()`` adds to the response.

    Falsy when it adds nothing, so the server can skip sending an empty chunk.
    """

    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)


@dataclass
class ReasoningDelta:
    """What one ``feed()`` or ``finish()`` of a reasoning parser adds."""

    reasoning: str | None = None
    content: str | None = None

    def __bool__(self) -> bool:
        return bool(self.reasoning or self.content)


@dataclass
class ToolCall:
    """One complete tool call; ``arguments`` is a JSON object as a string."""

    id: str
    name: str
    arguments: str
    type: str = "function"


@dataclass
class ParsedMessage:
    """The non-streamed result: ``message.content``, ``tool_calls`` and reasoning."""

    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None

    @property
    def tools_called(self) -> bool:
        """True when the response ends with ``finish_reason: "tool_calls"``."""
        return bool(self.tool_calls)


def merge_deltas(deltas: Iterable[DeltaMessage]) -> ParsedMessage:
    """Add up streamed deltas the way an OpenAI client does, checking the contract.

    Raises ParserContractError when a call's first delta lacks its id, type or name,
    when a later delta repeats them, or when indices skip or go back to an earlier call.
    """
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    for delta in deltas:
        content.append(delta.content or "")
        reasoning.append(delta.reasoning or "")
        for piece in delta.tool_calls:
            if piece.index == len(calls):
                if not piece.id or not piece.name or piece.type != "function":
                    raise ParserContractError(
                        f"the first delta of tool call {piece.index} must carry id, "
                        f"type='function' and name; got {piece!r}")
                calls.append(ToolCall(piece.id, piece.name, piece.arguments or ""))
            elif piece.index == len(calls) - 1:
                if piece.id is not None or piece.name is not None or piece.type is not None:
                    raise ParserContractError(
                        f"a later delta of tool call {piece.index} may carry only "
                        f"arguments; got {piece!r}")
                calls[-1].arguments += piece.arguments or ""
            else:
                raise ParserContractError(
                    f"tool call index {piece.index} out of order after {len(calls)} calls")
    return ParsedMessage(
        content="".join(content) or None,
        tool_calls=calls,
        reasoning="".join(reasoning) or None,
    )
