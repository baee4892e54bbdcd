"""POST /v1/responses and its store through the official openai SDK, over the fake and
scripted engines: the chat pipeline's results in the Responses API's shape."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import sse_events
from tests.core.server.scripted_engine import ScriptedEngine

MODEL = "fake-model"
EVENTS = TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
HERMES_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
#: shows past tool calls and results, so a test can read what the model was given
TOOL_TEMPLATE = ("{% for m in messages %}{{ m.role }}:{% if m.tool_calls %}{{ m.tool_calls[0].function.name }}"
                 "({{ m.tool_calls[0].function.arguments.city }}){% endif %}{{ m.content }};{% endfor %}")


def test_same_answer_as_the_chat_api(server):
    client = server.openai()
    response = client.responses.create(model=MODEL, input="Hi", instructions="Be brief.", max_output_tokens=9,
                                       metadata={"topic": "greeting"})
    chat = client.chat.completions.create(model=MODEL, max_tokens=9, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert response.output_text == chat.choices[0].message.content
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.input_tokens == chat.usage.prompt_tokens and response.usage.output_tokens == 9
    assert response.usage.total_tokens == response.usage.input_tokens + 9
    assert response.metadata == {"topic": "greeting"} and response.instructions == "Be brief."
    assert response.id.startswith("resp_") and response.object == "response" and response.model == MODEL
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "incomplete"


def test_the_response_echoes_the_requests_settings(server):
    """OpenAI's response object repeats what the request set, and its defaults where it
    set nothing."""
    client = server.openai()
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    text_format = {"type": "json_schema", "name": "place", "schema": schema, "strict": True}
    response = client.responses.create(
        model=MODEL, input="Hi", max_output_tokens=3, temperature=0.5, top_p=0.9, tools=[WEATHER],
        tool_choice="none", parallel_tool_calls=False, text={"format": text_format}, reasoning={"effort": "low"},
        user="u1", safety_identifier="s1", prompt_cache_key="k1", service_tier="default", store=False)
    assert (response.max_output_tokens, response.temperature, response.top_p) == (3, 0.5, 0.9)
    assert [t.to_dict() for t in response.tools] == [WEATHER]
    assert (response.tool_choice, response.parallel_tool_calls) == ("none", False)
    assert response.text.format.to_dict() == text_format
    assert response.reasoning.to_dict() == {"effort": "low", "summary": None}
    assert (response.user, response.safety_identifier, response.prompt_cache_key, response.service_tier) == \
        ("u1", "s1", "k1", "default")
    plain = client.responses.create(model=MODEL, input="Hi", max_output_tokens=1, store=False)
    assert (plain.tools, plain.tool_choice, plain.parallel_tool_calls) == ([], "auto", True)
    assert plain.text.format.type == "text" and plain.truncation == "disabled"


def test_cached_tokens_are_reported(server, start_server):
    client = server.openai()
    words = "the same words, long enough to fill a block of the prefix cache"
    first = client.responses.create(model=MODEL, input=words, max_output_tokens=2, store=False)
    again = client.responses.create(model=MODEL, input=words, max_output_tokens=2, store=False)
    assert first.usage.input_tokens_details.cached_tokens == 0
    assert again.usage.input_tokens_details.cached_tokens == again.usage.input_tokens - 1
    assert again.usage.input_tokens_details.cache_write_tokens == 0
    # what a first request writes to the cache is what the Messages API calls cache_creation_input_tokens
    fresh = anthropic.Anthropic(base_url=start_server().url, api_key="unused", max_retries=0)
    usage = fresh.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": words}]).usage
    assert first.usage.input_tokens_details.cache_write_tokens == usage.cache_creation_input_tokens > 0


def test_stream_events_in_order_with_increasing_sequence_numbers(server):
    client = server.openai()
    whole = client.responses.create(model=MODEL, input="Hi", max_output_tokens=12, store=False)
    events = list(client.responses.create(model=MODEL, input="Hi", max_output_tokens=12, store=False, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.incomplete"]
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == whole.output_text == events[-1].response.output_text
    with client.responses.stream(model=MODEL, input="Hi", max_output_tokens=40, store=False,
                                 extra_body={"stop": ["k"]}) as stream:  # stops before max_output_tokens
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text and "k" not in final.output_text
    assert final.output_text.startswith(whole.output_text)


def test_sse_lines_name_each_event(server):
    with server.http() as http:
        response = http.post("/v1/responses", json={"input": "Hi", "max_output_tokens": 2, "stream": True})
    lines = [line for line in response.text.splitlines() if line]
    names = [line.removeprefix("event: ") for line in lines[0::2]]
    assert names == [json.loads(line.removeprefix("data: "))["type"] for line in lines[1::2]]


def test_store_retrieve_continue_and_delete(server):
    client = server.openai()
    first = client.responses.create(model=MODEL, input="My name is Ada.", max_output_tokens=5)
    assert client.responses.retrieve(first.id).output_text == first.output_text
    second = client.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id,
                                     max_output_tokens=5)
    prompt = server.engine.requests[-1][1]["prompt"]
    assert prompt.index("My name is Ada.") < prompt.index(first.output_text) < prompt.index("What is my name?")
    assert second.previous_response_id == first.id
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve(first.id)
    assert info.value.body["param"] == "response_id"
    assert client.responses.retrieve(second.id).id == second.id  # it keeps the whole conversation
    client.responses.create(model=MODEL, input="Again?", previous_response_id=second.id, max_output_tokens=2)
    assert "My name is Ada." in server.engine.requests[-1][1]["prompt"]


def test_unknown_previous_response_is_a_404_in_openais_shape(server):
    with server.http() as http:
        response = http.post("/v1/responses", json={"input": "Hi", "previous_response_id": "resp_nope"})
    assert response.status_code == 404
    assert response.json() == {"error": {
        "message": response.json()["error"]["message"], "type": "invalid_request_error",
        "param": "previous_response_id", "code": "not_found"}}
    assert "'resp_nope'" in response.json()["error"]["message"]
    unstored = server.openai().responses.create(model=MODEL, input="Hi", max_output_tokens=1, store=False)
    with pytest.raises(openai.NotFoundError):
        server.openai().responses.retrieve(unstored.id)


def test_function_calls_stay_in_the_history(start_server):
    live = start_server(ScriptedEngine(HERMES_CALL), chat_template=TOOL_TEMPLATE, enable_auto_tool_choice=True,
                        tool_call_parser="hermes")
    client = live.openai()
    first = client.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id
    client.responses.create(model=MODEL, previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    prompt = live.engine.requests[-1][1]["prompt"]
    assert prompt == "user:Weather in Paris?;assistant:get_weather(Paris);tool:sunny;"


def test_function_call_events(start_server):
    live = start_server(ScriptedEngine("Checking. " + HERMES_CALL), enable_auto_tool_choice=True,
                        tool_call_parser="hermes")
    events = list(live.openai().responses.create(model=MODEL, input="Weather?", tools=[WEATHER], stream=True))
    added = [e.item.type for e in events if e.type == "response.output_item.added"]
    assert added == ["message", "function_call"]
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(arguments) == json.loads(done.arguments) == {"city": "Paris"}
    final = events[-1].response
    assert events[-1].type == "response.completed" and [i.type for i in final.output] == added


def test_parallel_tool_calls_false_keeps_one_call(start_server):
    live = start_server(ScriptedEngine(HERMES_CALL + HERMES_CALL.replace("Paris", "Rome")),
                        enable_auto_tool_choice=True, tool_call_parser="hermes")
    client = live.openai()
    assert len(client.responses.create(model=MODEL, input="x", tools=[WEATHER]).output) == 2
    response = client.responses.create(model=MODEL, input="x", tools=[WEATHER], parallel_tool_calls=False)
    assert [json.loads(i.arguments)["city"] for i in response.output] == ["Paris"]


def test_forced_calls_and_json_schema_are_constrained(start_server):
    live = start_server(ScriptedEngine('{"city": "Paris"}'))
    client = live.openai()
    response = client.responses.create(model=MODEL, input="Weather?", tools=[{**WEATHER, "strict": True}],
                                       tool_choice={"type": "function", "name": "get_weather"})
    assert live.engine.requests[-1][2].structured_outputs.json == WEATHER["parameters"]
    (call,) = response.output
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    response = client.responses.create(model=MODEL, input="x", text={"format": {
        "type": "json_schema", "name": "place", "schema": schema, "strict": True}})
    assert live.engine.requests[-1][2].structured_outputs.json == schema
    assert json.loads(response.output_text) == {"city": "Paris"} and response.text.format.type == "json_schema"


def test_reasoning_items_and_tokens(start_server):
    live = start_server(ScriptedEngine("<think>Paris is in France.</think>It is sunny."),
                        reasoning_parser="deepseek_r1")
    client = live.openai()
    response = client.responses.create(model=MODEL, input="Weather?", reasoning={"effort": "low"})
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.content[0].text == "Paris is in France."
    assert response.output_text == "It is sunny."
    expected = len(live.engine.tokenizer.encode("Paris is in France.", add_special_tokens=False))
    assert response.usage.output_tokens_details.reasoning_tokens == expected
    events = list(client.responses.create(model=MODEL, input="Weather?", stream=True))
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert thought == "Paris is in France."
    follow = client.responses.create(model=MODEL, input="And tomorrow?", previous_response_id=response.id)
    assert follow.status == "completed"  # the reasoning item went back in as history


def test_background_response_completes_and_can_be_polled(start_server):
    live = start_server(FakeEngine(token_delay=0.01))
    client = live.openai()
    queued = client.responses.create(model=MODEL, input="Hi", max_output_tokens=5, background=True)
    assert queued.status == "queued" and queued.background
    deadline = time.time() + 20
    while (polled := client.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
        assert time.time() < deadline
        time.sleep(0.05)
    assert polled.status == "incomplete" and len(polled.output_text) == 5


def test_background_response_can_be_cancelled(start_server):
    live = start_server(FakeEngine(token_delay=0.05))
    client = live.openai()
    queued = client.responses.create(model=MODEL, input="Hi", max_output_tokens=200, background=True)
    deadline = time.time() + 20
    while queued.id not in live.engine.running:
        assert time.time() < deadline
        time.sleep(0.02)
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled" and client.responses.retrieve(queued.id).status == "cancelled"
    assert queued.id in live.engine.aborted
    plain = client.responses.create(model=MODEL, input="Hi", max_output_tokens=1)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.cancel(plain.id)
    assert info.value.body["param"] == "response_id"


@pytest.mark.parametrize("body,status,param", [
    ({"input": "Hi", "max_output_tokens": 100_000}, 400, "max_output_tokens"),
    ({"input": "Hi", "frobnicate": 1}, 400, "frobnicate"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, 400, "input"),
    ({"input": "Hi", "background": True, "store": False}, 400, "background"),
    ({"input": "Hi", "background": True, "stream": True}, 400, "stream"),
    ({"input": "Hi", "model": "gpt-9"}, 404, "model"),
    ({"input": "Hi", "metadata": {str(i): "v" for i in range(17)}}, 400, "metadata"),
    ({"input": "Hi", "tools": [WEATHER], "tool_choice": "required", "text": {"format": {"type": "json_object"}}},
     400, "tool_choice"),
])
def test_errors_name_the_responses_parameter(server, body, status, param):
    with server.http() as http:
        response = http.post("/v1/responses", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_failure_mid_stream_is_an_error_event_then_failed(start_server):
    engine = FakeEngine()
    engine.fail_after = 2
    live = start_server(engine)
    with live.http() as http:
        response = http.post("/v1/responses", json={"input": "Hi", "max_output_tokens": 8, "stream": True})
    events = sse_events(response)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    error, failed = events[-2], Response.model_validate(events[-1]["response"])
    # OpenAI's error event: code, message and param, each present (null when unknown)
    EVENTS.validate_python(error)
    assert set(error) == {"type", "code", "message", "param", "sequence_number"} and error["param"] is None
    assert error["code"] == "internal_error" and failed.error.code == "server_error"
    assert failed.error.message == f"{error['message']} ({error['code']})"
    streamed = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert streamed and failed.output_text == streamed  # what was sent before the failure is kept
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    engine.fail_after = None
    with live.http() as http:  # the server keeps serving
        assert http.post("/v1/responses", json={"input": "Hi", "max_output_tokens": 1}).status_code == 200


def test_a_disabled_store_keeps_nothing(start_server):
    live = start_server(responses_store_max_entries=0)
    response = live.openai().responses.create(model=MODEL, input="Hi", max_output_tokens=1)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        live.openai().responses.retrieve(response.id)


def test_unauthorized_is_openais_shape(start_server):
    live = start_server(api_key=["k"])
    response = httpx.post(f"{live.url}/v1/responses", json={"input": "Hi"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert live.openai(api_key="k").responses.create(model=MODEL, input="Hi", max_output_tokens=1).output_text


def failing_engine() -> FakeEngine:
    engine = FakeEngine(token_delay=0.01)
    engine.fail_after = 2
    return engine


@pytest.mark.parametrize("engine,ask,code,fw_code", [
    (failing_engine, {}, "server_error", "internal_error"),
    (lambda: FakeEngine(queue_limit=0), {}, "rate_limit_exceeded", "overloaded"),
    (FakeEngine, {"max_output_tokens": 100_000}, "invalid_prompt", "context_length_exceeded"),
], ids=["engine-failure", "queue-full", "bad-request"])
def test_a_background_failure_is_stored_as_failed(start_server, engine, ask, code, fw_code):
    """A background response fails after it was accepted; its error's code is OpenAI's
    (retry later, a server fault, or the request's own), its message keeps fw's code."""
    live = start_server(engine())
    client = live.openai()
    queued = client.responses.create(model=MODEL, input="Hi", background=True, **{"max_output_tokens": 20, **ask})
    deadline = time.time() + 20
    while (polled := client.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
        assert time.time() < deadline
        time.sleep(0.05)
    assert polled.status == "failed" and polled.error.code == code
    assert polled.error.message.endswith(f" ({fw_code})")
