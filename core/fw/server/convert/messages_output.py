"""A parsed assistant turn as an Anthropic message and its stream events.

``BlockBuilder`` turns the parser's deltas into content blocks (thinking, text,
tool_use) and returns the events that build them: ``content_block_start``, its
``content_block_delta`` events (``thinking_delta``, ``text_delta``,
``input_json_delta``), ``content_block_stop`` before the next block starts. The stream
opens with ``message_start`` and a ``ping`` and ends with ``message_delta`` (stop reason,
usage) and ``message_stop``; the non-streamed message is built by the same code.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, AsyncIterator

from fw.parsing.messages import DeltaMessage, ToolCallDelta
from fw.server.convert.common import split_open_call
from fw.server.errors import ApiError
from fw.server.protocol.messages import MessageResponse, MessagesRequest, MessagesUsage
from fw.server.sse import event
from fw.server.turn import Turn

Event = dict[str, Any]


class BlockBuilder:
    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []
        self.open: int | None = None
        self.open_call: int | None = None
        #: the JSON text of each tool_use block's input, as streamed
        self.inputs: dict[int, str] = {}

    def add(self, delta: DeltaMessage) -> list[Event]:
        events: list[Event] = []
        open_call, calls = split_open_call(delta.tool_calls)
        for call in open_call:
            events += self._call(call)
        if delta.reasoning:
            events += self._text("thinking", delta.reasoning)
        if delta.content:
            events += self._text("text", delta.content)
        for call in calls:
            events += self._call(call)
        return events

    def finish(self) -> list[Event]:
        return self._close()

    def content(self) -> list[dict[str, Any]]:
        """The finished blocks; a tool_use input that is not a JSON object (cut off by
        max_tokens) is an empty one."""
        blocks = []
        for index, block in enumerate(self.blocks):
            if block["type"] == "tool_use":
                try:
                    arguments = json.loads(self.inputs.get(index) or "{}")
                except ValueError:
                    arguments = {}
                block = {**block, "input": arguments if isinstance(arguments, dict) else {}}
            blocks.append(block)
        return blocks

    def _start(self, block: dict[str, Any]) -> list[Event]:
        events = self._close()
        self.blocks.append(block)
        self.open = len(self.blocks) - 1
        return events + [{"type": "content_block_start", "index": self.open, "content_block": dict(block)}]

    def _text(self, kind: str, text: str) -> list[Event]:
        events: list[Event] = []
        if self.open is None or self.blocks[self.open]["type"] != kind:
            events = self._start({"type": "text", "text": ""} if kind == "text"
                                 else {"type": "thinking", "thinking": "", "signature": ""})
        field = "text" if kind == "text" else "thinking"
        self.blocks[self.open][field] += text
        return events + [{"type": "content_block_delta", "index": self.open,
                          "delta": {"type": f"{field}_delta", field: text}}]

    def _call(self, call: ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        if call.id is not None:
            events = self._start({"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
            self.open_call = call.index
        if self.open is None or self.open_call != call.index or not call.arguments:
            return events
        self.inputs[self.open] = self.inputs.get(self.open, "") + call.arguments
        return events + [{"type": "content_block_delta", "index": self.open,
                          "delta": {"type": "input_json_delta", "partial_json": call.arguments}}]

    def _close(self) -> list[Event]:
        if self.open is None:
            return []
        index, self.open, self.open_call = self.open, None, None
        return [{"type": "content_block_stop", "index": index}]


def stop_reason(turn: Turn, stop_sequences: list[str] | None) -> tuple[str, str | None]:
    """Anthropic's stop_reason (and the stop_sequence that matched) for a finished turn."""
    choice = turn.choice
    if turn.called:
        return "tool_use", None
    if choice.finish_reason == "length":
        return "max_tokens", None
    if choice.stop_reason in (stop_sequences or ()):  # a stop token id is never one of these strings
        return "stop_sequence", choice.stop_reason
    return "end_turn", None


class MessageView:
    """One turn as an Anthropic message, streamed as events or collected whole."""

    def __init__(self, body: MessagesRequest, turn: Turn, *, message_id: str, model: str):
        self.body, self.turn = body, turn
        self.id, self.model = message_id, model
        self.builder = BlockBuilder()

    def usage(self, start: bool = False) -> MessagesUsage:
        usage = self.turn.start_usage() if start else self.turn.usage()
        return MessagesUsage(input_tokens=usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens,
                             output_tokens=usage.output_tokens, cache_creation_input_tokens=usage.cache_write_tokens,
                             cache_read_input_tokens=usage.cached_tokens)

    def _message(self, content: list[dict[str, Any]], usage: MessagesUsage, done: bool) -> MessageResponse:
        reason, sequence = stop_reason(self.turn, self.body.stop_sequences) if done else (None, None)
        return MessageResponse(id=self.id, model=self.model, content=content, stop_reason=reason,
                               stop_sequence=sequence, usage=usage)

    async def collect(self) -> MessageResponse:
        async for delta in self.turn.deltas():
            self.builder.add(delta)
        self.builder.finish()
        return self._message(self.builder.content(), self.usage(), done=True)

    async def stream(self) -> AsyncIterator[str]:
        start = self._message([], self.usage(start=True), done=False)
        yield event({"type": "message_start", "message": start.model_dump(mode="json")}, "message_start")
        yield event({"type": "ping"}, "ping")
        async for delta in self.turn.deltas():
            for item in self.builder.add(delta):
                yield event(item, item["type"])
        for item in self.builder.finish():
            yield event(item, item["type"])
        reason, sequence = stop_reason(self.turn, self.body.stop_sequences)
        yield event({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                     "usage": self.usage().model_dump(mode="json")}, "message_delta")
        yield event({"type": "message_stop"}, "message_stop")


def error_events(error: ApiError) -> list[str]:
    """A failure after the stream started, as Anthropic sends it: an ``error`` event."""
    return [event(error.body("anthropic"), "error")]


def new_message_id(base: str) -> str:
    return f"msg_{base or uuid.uuid4().hex}"
