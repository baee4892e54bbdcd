"""Parsed deltas as Responses output items and events, checked against the openai SDK's types."""

from __future__ import annotations

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from fw.parsing.messages import DeltaMessage, ToolCallDelta
from fw.server.convert.responses_output import OutputBuilder, response_object
from fw.server.protocol.responses import InputTokensDetails, OutputTokensDetails, ResponsesRequest, ResponseUsage

EVENTS = TypeAdapter(ResponseStreamEvent)
TURN = [DeltaMessage(reasoning="Think"), DeltaMessage(reasoning="ing."), DeltaMessage(content="Hel"),
        DeltaMessage(content="lo"), DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x"')]),
        DeltaMessage(tool_calls=[ToolCallDelta(0, arguments=": 1}")]),
        DeltaMessage(tool_calls=[ToolCallDelta(1, "call_b", "function", "g", "{}")])]


def build(deltas, status="completed"):
    builder = OutputBuilder()
    events = [e for d in deltas for e in builder.add(d)] + builder.finish(status)
    return builder, events


def test_items_and_events_follow_openais_shapes_and_order():
    builder, events = build(TURN)
    for number, item in enumerate(events):
        EVENTS.validate_python({**item, "sequence_number": number})
    assert [e["type"] for e in events] == [
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done"]
    reasoning, message, first, second = builder.items
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Thinking."}]
    assert message["content"][0]["text"] == "Hello" and message["status"] == "completed"
    assert (first["call_id"], first["name"], first["arguments"]) == ("call_a", "f", '{"x": 1}')
    assert (second["call_id"], second["arguments"]) == ("call_b", "{}")
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [e["output_index"] for e in added] == [0, 1, 2, 3]
    assert added[1]["item"]["content"] == [] and added[1]["item"]["status"] == "in_progress"
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert [e["item"] for e in done] == builder.items


def test_streamed_pieces_and_whole_text_give_the_same_items():
    whole, _ = build([DeltaMessage(reasoning="Thinking.", content="Hello",
                                   tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x": 1}'),
                                               ToolCallDelta(1, "call_b", "function", "g", "{}")])])
    pieces, _ = build(TURN)
    strip = lambda items: [{k: v for k, v in i.items() if k != "id"} for i in items]  # noqa: E731
    assert strip(whole.items) == strip(pieces.items)


def test_an_empty_answer_is_an_empty_message_and_a_cut_one_is_incomplete():
    builder, events = build([])
    assert [i["type"] for i in builder.items] == ["message"] and builder.items[0]["content"][0]["text"] == ""
    builder, _ = build([DeltaMessage(content="abc")], status="incomplete")
    assert builder.items[0]["status"] == "incomplete"


@pytest.mark.parametrize("status", ["completed", "incomplete", "queued", "in_progress", "failed", "cancelled"])
def test_the_response_object_is_openais(status):
    builder, _ = build(TURN)
    usage = ResponseUsage(input_tokens=10, input_tokens_details=InputTokensDetails(cached_tokens=4,
                                                                                   cache_write_tokens=0),
                          output_tokens=6, output_tokens_details=OutputTokensDetails(reasoning_tokens=2),
                          total_tokens=16)
    body = ResponsesRequest(input="x", metadata={"k": "v"}, text={"format": {"type": "json_object"}},
                            reasoning={"effort": "low"}, tools=[{"type": "function", "name": "f"}])
    data = response_object(body, response_id="resp_1", model="m", created_at=1, status=status, store=True,
                           output=builder.items, usage=usage).model_dump(mode="json")
    response = Response.model_validate(data)
    assert response.status == status and response.metadata == {"k": "v"}
    assert (response.incomplete_details is not None) == (status == "incomplete")
    # the SDK's reference: completed_at is "only present when the status is `completed`"
    assert (response.completed_at is not None) == (status == "completed")
    assert response.output_text == "Hello" and response.text.format.type == "json_object"


def test_the_last_piece_of_a_call_and_the_text_after_it_in_one_delta():
    """A streaming parser that reads the end of a call and the text after it in one chunk
    returns both in one delta: the piece still belongs to the call, before the text."""
    builder, events = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x"')]),
                             DeltaMessage(content=" Done.", tool_calls=[ToolCallDelta(0, arguments=": 1}")])])
    assert [i["type"] for i in builder.items] == ["function_call", "message"]
    assert builder.items[0]["arguments"] == '{"x": 1}' and builder.items[1]["content"][0]["text"] == " Done."
