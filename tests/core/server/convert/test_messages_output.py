"""Parsed deltas as Anthropic content blocks and events, checked with the anthropic SDK's
own types and its stream accumulator."""

from __future__ import annotations

import pytest
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
#: the delta each kind of content block takes (Anthropic's streaming reference)
DELTA_OF = {"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}


def build(deltas):
    builder = BlockBuilder()
    return builder, [e for d in deltas for e in builder.add(d)] + builder.finish()


def accumulated(events) -> list[dict]:
    """The blocks the SDK's stream accumulator makes of ``events``."""
    snapshot, buffers = None, {}
    for item in [START] + events:
        snapshot = accumulate_event(event=EVENTS.validate_python(item), current_snapshot=snapshot, json_bufs=buffers)
    return [b.to_dict(exclude_none=True) for b in snapshot.content]


def check_block_protocol(events) -> None:
    """Blocks open and close one at a time; each delta goes to the open block and is of
    that block's kind."""
    open_block = None
    for item in events:
        if item["type"] == "content_block_start":
            assert open_block is None
            open_block = (item["index"], item["content_block"]["type"])
        elif item["type"] == "content_block_delta":
            assert open_block is not None and item["index"] == open_block[0], item
            assert item["delta"]["type"] == DELTA_OF[open_block[1]], item
        else:
            assert item == {"type": "content_block_stop", "index": open_block[0]}
            open_block = None
    assert open_block is None


def test_events_rebuild_the_same_blocks_in_the_sdks_accumulator():
    builder, events = build(TURN)
    blocks = builder.content()
    assert blocks == [{"type": "thinking", "thinking": "Thinking.", "signature": ""},
                      {"type": "text", "text": "Hello"},
                      {"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": [1, 2]}}]
    assert accumulated(events) == blocks
    assert [e["type"] for e in events].count("content_block_stop") == 3
    check_block_protocol(events)


def test_streamed_pieces_and_whole_text_give_the_same_blocks():
    whole, events = build([DeltaMessage(reasoning="Thinking.", content="Hello",
                                        tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x": [1, 2]}')])])
    pieces, _ = build(TURN)
    assert whole.content() == pieces.content() == accumulated(events)
    check_block_protocol(events)


def test_one_delta_with_every_kind_of_piece():
    """The end of the open call, thinking, text and a new call in one delta: each is
    sent, in that order."""
    builder, events = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x"')]),
                             DeltaMessage(reasoning="Hm.", content="Ok.", tool_calls=[
                                 ToolCallDelta(0, arguments=": "), ToolCallDelta(0, arguments="1}"),
                                 ToolCallDelta(1, "call_b", "function", "g", "{}")])])
    assert builder.content() == [{"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
                                 {"type": "thinking", "thinking": "Hm.", "signature": ""},
                                 {"type": "text", "text": "Ok."},
                                 {"type": "tool_use", "id": "call_b", "name": "g", "input": {}}]
    assert accumulated(events) == builder.content()
    check_block_protocol(events)


def test_a_call_whose_first_piece_has_only_its_name():
    """A parser may send a call's id and name first and its arguments after (the
    ToolCallDelta contract); the arguments then stream into the same block."""
    builder, events = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f")]),
                             DeltaMessage(tool_calls=[ToolCallDelta(0, arguments='{"x": ')]),
                             DeltaMessage(tool_calls=[ToolCallDelta(0, arguments="1}")])])
    assert builder.content() == [{"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}}]
    assert accumulated(events) == builder.content()
    check_block_protocol(events)


def test_the_last_piece_of_a_call_and_the_text_after_it_in_one_delta():
    """A streaming parser that reads the end of a call and the text after it in one chunk
    returns both in one delta: the piece still belongs to the call, before the text."""
    builder, events = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x"')]),
                             DeltaMessage(content=" Done.", tool_calls=[ToolCallDelta(0, arguments=": 1}")])])
    assert builder.content() == [{"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
                                 {"type": "text", "text": " Done."}]
    assert accumulated(events) == builder.content()
    check_block_protocol(events)


def test_pieces_of_a_call_no_longer_open_go_into_no_other_block():
    """Arguments that arrive after the call's block was closed (by text, or by a parser
    that goes back to an earlier call) cannot be sent any more; they must not land in
    the block that is open then."""
    builder, events = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x": 1}')]),
                             DeltaMessage(content="Also:"), DeltaMessage(tool_calls=[ToolCallDelta(0, arguments=" ")]),
                             DeltaMessage(tool_calls=[ToolCallDelta(1, "call_b", "function", "g", '{"y": 2}')]),
                             DeltaMessage(tool_calls=[ToolCallDelta(0, arguments="}")])])
    assert builder.content() == [{"type": "tool_use", "id": "call_a", "name": "f", "input": {"x": 1}},
                                 {"type": "text", "text": "Also:"},
                                 {"type": "tool_use", "id": "call_b", "name": "g", "input": {"y": 2}}]
    assert accumulated(events) == builder.content()
    check_block_protocol(events)


@pytest.mark.parametrize("arguments", ['{"x": ', "[1, 2]", '"x"', "null"])
def test_a_tool_input_that_is_not_a_json_object_is_an_empty_one(arguments):
    """Anthropic's tool_use input is an object: arguments cut short by max_tokens, or a
    model that wrote another JSON value, give an empty one."""
    builder, _ = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", arguments)])])
    assert builder.content()[0]["input"] == {}
