"""Parsed deltas as Anthropic content blocks and events, checked with the anthropic SDK's
own types and its stream accumulator."""

from __future__ import annotations

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from fw.parsing.messages import DeltaMessage, ToolCallDelta
from fw.server.convert.messages_output import BlockBuilder

EVENTS = TypeAdapter(RawMessageStreamEvent)
TURN = [DeltaMessage(reasoning="Think"), DeltaMessage(reasoning="ing."), DeltaMessage(content="Hel"),
        DeltaMessage(content="lo"), DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x"')]),
        DeltaMessage(tool_calls=[ToolCallDelta(0, arguments=": [1, 2]}")])]
START = {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [], "stop_reason": None,
    "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 0}}}


def test_events_rebuild_the_same_blocks_in_the_sdks_accumulator():
    builder = BlockBuilder()
    events = [e for d in TURN for e in builder.add(d)] + builder.finish()
    snapshot, buffers = None, {}
    for item in [START] + events:
        snapshot = accumulate_event(event=EVENTS.validate_python(item), current_snapshot=snapshot, json_bufs=buffers)
    blocks = builder.content()
    assert blocks == [{"type": "thinking", "thinking": "Thinking.", "signature": ""},
                      {"type": "text", "text": "Hello"},
                      {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": [1, 2]}}]
    assert [b.to_dict(exclude_none=True) for b in snapshot.content] == blocks
    assert [e["type"] for e in events].count("content_block_stop") == 3


def test_a_tool_input_cut_short_is_an_empty_object():
    builder = BlockBuilder()
    builder.add(DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x": ')]))
    builder.finish()
    assert builder.content()[0]["input"] == {}


def test_the_last_piece_of_a_call_and_the_text_after_it_in_one_delta():
    """A streaming parser that reads the end of a call and the text after it in one chunk
    returns both in one delta: the piece still belongs to the call, before the text."""
    builder = BlockBuilder()
    events = [e for d in [DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x"')]),
                          DeltaMessage(content=" Done.", tool_calls=[ToolCallDelta(0, arguments=": 1}")])]
              for e in builder.add(d)] + builder.finish()
    assert builder.content() == [{"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
                                 {"type": "text", "text": " Done."}]
    assert [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"] == \
        ["input_json_delta", "input_json_delta", "text_delta"]
