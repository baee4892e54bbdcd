"""Parsed deltas as Responses output items and events, checked against the openai SDK's types."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from openai.types.responses import Response, ResponseOutputText, ResponseStreamEvent
from openai.types.responses.response_reasoning_item import Content as ReasoningText
from pydantic import TypeAdapter

from fw.parsing.messages import DeltaMessage, ToolCallDelta
from fw.server.convert.responses_output import OutputBuilder, ResponseView, response_object
from fw.server.errors import ApiError
from fw.server.json_body import load_json
from fw.server.turn import TurnUsage
from fw.server.protocol.responses import InputTokensDetails, OutputTokensDetails, ResponsesRequest, ResponseUsage

EVENTS = TypeAdapter(ResponseStreamEvent)
TURN = [DeltaMessage(reasoning="Think"), DeltaMessage(reasoning="ing."), DeltaMessage(content="Hel"),
        DeltaMessage(content="lo"), DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x"')]),
        DeltaMessage(tool_calls=[ToolCallDelta(0, arguments=": 1}")]),
        DeltaMessage(tool_calls=[ToolCallDelta(1, "call_b", "function", "g", "{}")])]
#: the id prefix of each output item type, as OpenAI writes them (and checks them when
#: items are sent back as input)
ID_PREFIX = {"message": "msg_", "reasoning": "rs_", "function_call": "fc_"}
#: the fields of each content part, as the SDK's types have them
PART_FIELDS = {"output_text": set(ResponseOutputText.model_fields), "reasoning_text": set(ReasoningText.model_fields)}


def build(deltas, status="completed"):
    builder = OutputBuilder()
    events = [e for d in deltas for e in builder.add(d)] + builder.finish(status)
    return builder, events


def check_events(events, items) -> None:
    """OpenAI's event types, agreeing with the ``items`` they build: each item is added in
    progress (with its type's id prefix) and done as it ended, one at a time; every event
    names the open item; the part events and deltas point at a part of it by
    content_index, and the deltas add up to that part's text (a call's to its
    arguments); a call's done event has its name and arguments."""
    final = {item["id"]: item for item in items}
    texts: dict[tuple[str, int], str] = {}
    open_item, done = None, []
    for number, item in enumerate(events):
        EVENTS.validate_python({**item, "sequence_number": number})
        kind = item["type"]
        if kind == "response.output_item.added":
            assert open_item is None
            open_item = item["item"]
            assert open_item["status"] == "in_progress"
            assert open_item["id"].startswith(ID_PREFIX[open_item["type"]]), open_item
            continue
        assert open_item is not None and item.get("item_id", item.get("item", {}).get("id")) == open_item["id"]
        if kind == "response.output_item.done":
            done.append(item["item"])
            open_item = None
        elif "content_index" in item:
            part = final[open_item["id"]]["content"][item["content_index"]]
            if kind.endswith(".delta"):
                key = (open_item["id"], item["content_index"])
                texts[key] = texts.get(key, "") + item["delta"]
            elif kind.endswith("text.done"):
                assert item["text"] == part["text"]
            else:
                assert item["part"]["type"] == part["type"] and set(item["part"]) == PART_FIELDS[part["type"]]
        elif kind == "response.function_call_arguments.delta":
            assert open_item["type"] == "function_call"
            texts[(open_item["id"], None)] = texts.get((open_item["id"], None), "") + item["delta"]
        elif kind == "response.function_call_arguments.done":
            call = final[open_item["id"]]
            assert (item["name"], item["arguments"]) == (call["name"], call["arguments"])
    assert open_item is None and done == items
    for (item_id, index), text in texts.items():
        item = final[item_id]
        assert (item["arguments"] if index is None else item["content"][index]["text"]) == text
    for item in items:
        assert all(set(part) == PART_FIELDS[part["type"]] for part in item.get("content", []))
    assert len(final) == len(items)


def test_items_and_events_follow_openais_shapes_and_order():
    builder, events = build(TURN)
    check_events(events, builder.items)
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


def strip_ids(items):
    return [{k: v for k, v in i.items() if k != "id"} for i in items]


def test_streamed_pieces_and_whole_text_give_the_same_items():
    whole, events = build([DeltaMessage(reasoning="Thinking.", content="Hello",
                                        tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x": 1}'),
                                                    ToolCallDelta(1, "call_b", "function", "g", "{}")])])
    check_events(events, whole.items)
    pieces, _ = build(TURN)
    assert strip_ids(whole.items) == strip_ids(pieces.items)


def test_one_delta_with_every_kind_of_piece():
    """The end of the open call, reasoning, text and a new call in one delta: each is
    sent, in that order."""
    builder, events = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x"')]),
                             DeltaMessage(reasoning="Hm.", content="Ok.", tool_calls=[
                                 ToolCallDelta(0, arguments=": "), ToolCallDelta(0, arguments="1}"),
                                 ToolCallDelta(1, "call_b", "function", "g", "{}")])])
    check_events(events, builder.items)
    assert [i["type"] for i in builder.items] == ["function_call", "reasoning", "message", "function_call"]
    assert [i.get("arguments") or i["content"][0]["text"] for i in builder.items] == ['{"x": 1}', "Hm.", "Ok.", "{}"]


def test_an_empty_answer_is_an_empty_message_and_a_cut_one_is_incomplete():
    builder, events = build([])
    assert [i["type"] for i in builder.items] == ["message"] and builder.items[0]["content"][0]["text"] == ""
    check_events(events, builder.items)
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


def arguments(builder) -> list[tuple[str, str]]:
    return [(i["call_id"], i["arguments"]) for i in builder.items if i["type"] == "function_call"]


def test_a_call_whose_first_piece_has_only_its_name():
    """A parser may send a call's id and name first and its arguments after (the
    ToolCallDelta contract); the arguments then stream into the same item."""
    builder, events = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f")]),
                             DeltaMessage(tool_calls=[ToolCallDelta(0, arguments='{"x": ')]),
                             DeltaMessage(tool_calls=[ToolCallDelta(0, arguments="1}")])])
    check_events(events, builder.items)
    assert arguments(builder) == [("call_a", '{"x": 1}')]


def test_the_last_piece_of_a_call_and_the_text_after_it_in_one_delta():
    """A streaming parser that reads the end of a call and the text after it in one chunk
    returns both in one delta: the piece still belongs to the call, before the text."""
    builder, events = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x"')]),
                             DeltaMessage(content=" Done.", tool_calls=[ToolCallDelta(0, arguments=": 1}")])])
    check_events(events, builder.items)
    assert [i["type"] for i in builder.items] == ["function_call", "message"]
    assert arguments(builder) == [("call_a", '{"x": 1}')] and builder.items[1]["content"][0]["text"] == " Done."


def test_pieces_of_a_call_no_longer_open_go_into_no_other_item():
    """Arguments that arrive after the call's item was closed (by text, or by a parser
    that goes back to an earlier call) cannot be sent any more; they must not land in
    the item that is open then."""
    builder, events = build([DeltaMessage(tool_calls=[ToolCallDelta(0, "call_a", "function", "f", '{"x": 1}')]),
                             DeltaMessage(content="Also:"), DeltaMessage(tool_calls=[ToolCallDelta(0, arguments=" ")]),
                             DeltaMessage(tool_calls=[ToolCallDelta(1, "call_b", "function", "g", '{"y": 2}')]),
                             DeltaMessage(tool_calls=[ToolCallDelta(0, arguments="}")])])
    check_events(events, builder.items)
    assert arguments(builder) == [("call_a", '{"x": 1}'), ("call_b", '{"y": 2}')]
    assert builder.items[1]["content"][0]["text"] == "Also:"
    assert [json.loads(a) for _, a in arguments(builder)] == [{"x": 1}, {"y": 2}]


@pytest.mark.parametrize("error,code,message", [
    (ApiError(500, "boom", type="server_error", code="internal_error"), "server_error", "boom (internal_error)"),
    (ApiError(503, "the waiting queue is full", type="server_error", code="overloaded"), "rate_limit_exceeded",
     "the waiting queue is full (overloaded)"),
    (ApiError(429, "slow down"), "rate_limit_exceeded", "slow down"),
    (ApiError(400, "max_output_tokens: too many", param="max_output_tokens", code="invalid_value"),
     "invalid_prompt", "max_output_tokens: too many (invalid_value)"),
    (ApiError(404, "no such adapter"), "invalid_prompt", "no such adapter"),
])
def test_a_failed_responses_error_has_openais_codes(error, code, message):
    """OpenAI's error codes of a failed response say whether to retry (rate limits and an
    overloaded server), report a server fault, or fix the request; fw's own code, when
    it has one, stays readable in the message."""
    data = response_object(ResponsesRequest(input="x"), response_id="resp_1", model="m", created_at=1,
                           status="failed", store=True, error=error).model_dump(mode="json")
    response = Response.model_validate(data)
    assert response.status == "failed" and (response.error.code, response.error.message) == (code, message)


class ScriptedTurn:
    """What a ResponseView reads of a Turn: the parser's deltas, the choice's finish reason
    and the usage."""

    def __init__(self, deltas, finish_reason="stop"):
        self._deltas = deltas
        self.choice = SimpleNamespace(finish_reason=finish_reason)

    async def deltas(self):
        for delta in self._deltas:
            yield delta

    def usage(self) -> TurnUsage:
        return TurnUsage(input_tokens=5, cached_tokens=0, cache_write_tokens=0, output_tokens=4, reasoning_tokens=2)


def _refuse(name: str):
    raise ValueError(f"{name} is not JSON")


def strict_events(lines: list[str]) -> list[dict]:
    """The SSE events' payloads, parsed as JSON (RFC 8259), which has no Infinity or NaN:
    what a browser's JSON.parse accepts."""
    payloads = []
    for line in lines:
        name, data = line.removesuffix("\n\n").split("\n")
        payload = json.loads(data.removeprefix("data: "), parse_constant=_refuse)
        assert name == f"event: {payload['type']}"
        payloads.append(payload)
    return payloads


#: a request as the server parses it: 1e400 is a JSON number, which Python reads as inf
#: (the parser refuses only the literals NaN and Infinity)
HUGE = load_json(b'{"input": "x", "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", '
                 b'"properties": {"n": {"type": "number", "maximum": 1e400}}}}]}')


def view(deltas=TURN, finish_reason="stop"):
    return ResponseView(ResponsesRequest.model_validate(HUGE), ScriptedTurn(deltas, finish_reason),
                        response_id="resp_1", model="m", store=True)


async def _streamed(response_view) -> list[str]:
    return [line async for line in response_view.stream()]


@pytest.mark.parametrize("finish_reason", ["stop", "length"])
def test_a_streamed_response_is_json_and_echoes_the_request_as_the_whole_response_does(finish_reason):
    """The response object in response.created, .in_progress and .completed (or
    .incomplete) is what the non-streamed response is (as FastAPI sends it: JSON, a number
    beyond float range as null), and every event is strict JSON; the openai SDK reads
    each event and the final response."""
    whole = json.loads((asyncio.run(view(finish_reason=finish_reason).collect())).model_dump_json(),
                       parse_constant=_refuse)
    assert whole["tools"][0]["parameters"]["properties"]["n"] == {"type": "number", "maximum": None}
    events = strict_events(asyncio.run(_streamed(view(finish_reason=finish_reason))))
    for event in events:
        EVENTS.validate_python(event)
    last = "response.incomplete" if finish_reason == "length" else "response.completed"
    assert [e["type"] for e in events[:2]] + [events[-1]["type"]] == ["response.created", "response.in_progress",
                                                                     last]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    skip = {"created_at", "completed_at", "output", "usage", "status", "incomplete_details"}
    for event in (events[0], events[1], events[-1]):
        assert {k: v for k, v in event["response"].items() if k not in skip} == {
            k: v for k, v in whole.items() if k not in skip}
    final = Response.model_validate(events[-1]["response"])
    assert final.status == ("incomplete" if finish_reason == "length" else "completed")
    assert strip_ids(events[-1]["response"]["output"]) == strip_ids(whole["output"])
    assert final.output_text == "Hello"


def test_a_stream_that_fails_ends_with_an_error_and_a_failed_response_in_strict_json():
    """After a failure mid-stream: an ``error`` event, then ``response.failed`` with the
    items so far, both JSON and OpenAI's shapes."""
    response_view = view()

    async def part_then_fail() -> list[str]:
        lines = []
        async for line in response_view.stream():
            lines.append(line)
            if '"response.output_text.delta"' in line:
                break
        return lines + response_view.error_events(ApiError(500, "boom", type="server_error", code="internal_error"))

    events = strict_events(asyncio.run(part_then_fail()))
    error, failed = events[-2:]
    assert (error["type"], error["message"], error["code"]) == ("error", "boom", "internal_error")
    EVENTS.validate_python(error)
    EVENTS.validate_python(failed)
    response = Response.model_validate(failed["response"])
    assert response.status == "failed" and response.error.code == "server_error"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert failed["response"]["tools"][0]["parameters"]["properties"]["n"]["maximum"] is None
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
