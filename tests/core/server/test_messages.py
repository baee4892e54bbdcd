"""POST /v1/messages and /v1/messages/count_tokens through the official anthropic SDK,
over the fake and scripted engines: the chat pipeline's results in Anthropic's shape."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from tests.core.server.fake_engine import FakeEngine
from tests.core.server.scripted_engine import ScriptedEngine

MODEL = "fake-model"
EVENTS = TypeAdapter(RawMessageStreamEvent)
HI = [{"role": "user", "content": "Hi"}]
WEATHER = {"name": "get_weather", "description": "Current weather",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
HERMES_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
TOOL_TEMPLATE = ("{% for m in messages %}{{ m.role }}:{% if m.tool_calls %}{{ m.tool_calls[0].function.name }}"
                 "({{ m.tool_calls[0].function.arguments.city }}){% endif %}{{ m.content }};{% endfor %}")


def client_of(live, **kwargs) -> anthropic.Anthropic:
    kwargs.setdefault("api_key", "unused")
    return anthropic.Anthropic(base_url=live.url, max_retries=0, **kwargs)


def test_same_answer_as_the_chat_api(server):
    message = client_of(server).messages.create(model=MODEL, max_tokens=9, system="Be brief.", messages=HI,
                                                metadata={"user_id": "u1"})
    chat = server.openai().chat.completions.create(model=MODEL, max_tokens=9, messages=[
        {"role": "system", "content": "Be brief."}, *HI])
    (block,) = message.content
    assert block.type == "text" and block.text == chat.choices[0].message.content
    assert message.stop_reason == "max_tokens" and message.stop_sequence is None
    assert message.role == "assistant" and message.model == MODEL and message.id.startswith("msg_")
    usage = message.usage
    assert usage.output_tokens == 9
    assert usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens == \
        chat.usage.prompt_tokens


def test_the_message_id_is_the_request_id(server):
    """A client that sends X-Request-Id finds its message under that id (in the server's
    log lines and the engine's request), as for the other APIs."""
    client = client_of(server)
    message = client.messages.create(model=MODEL, max_tokens=1, messages=HI, extra_headers={"X-Request-Id": "trace-me"})
    assert message.id == "msg_trace-me" and server.engine.requests[-1][0] == "msg_trace-me"
    assert client.messages.create(model=MODEL, max_tokens=1, messages=HI).id not in ("msg_trace-me", "msg_")


def test_count_tokens_is_the_requests_input(server):
    client = client_of(server)
    ask = {"model": MODEL, "system": "Be brief.", "messages": HI + [
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "How are you?"}]}
    count = client.messages.count_tokens(**ask).input_tokens
    usage = client.messages.create(max_tokens=2, **ask).usage
    assert count == usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    assert count == server.openai().chat.completions.create(
        max_tokens=1, model=MODEL, messages=[{"role": "system", "content": "Be brief."}, *ask["messages"]]
    ).usage.prompt_tokens


def test_cache_reads_are_reported(server):
    client = client_of(server)
    client.messages.create(model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "the same words"}])
    again = client.messages.create(model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "the same words"}])
    total = again.usage.input_tokens + again.usage.cache_creation_input_tokens + again.usage.cache_read_input_tokens
    assert again.usage.cache_read_input_tokens == total - 1


def test_stream_deltas_make_the_same_message(server):
    client = client_of(server)
    whole = client.messages.create(model=MODEL, max_tokens=12, messages=HI)
    with client.messages.stream(model=MODEL, max_tokens=12, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == whole.content[0].text
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 12
    with server.http() as http:
        raw = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 2, "messages": HI, "stream": True})
    names = [line.removeprefix("event: ") for line in raw.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]


def test_each_stream_event_is_named_by_its_type(server):
    """Anthropic's stream: every event is an ``event:`` line that names it and a ``data:``
    JSON object of that type (the ping included); raw SSE clients dispatch on either."""
    with server.http() as http:
        raw = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 3, "messages": HI, "stream": True})
    lines = [line for line in raw.text.splitlines() if line]
    assert all(line.startswith("event: ") for line in lines[0::2]) and len(lines) % 2 == 0
    names = [line.removeprefix("event: ") for line in lines[0::2]]
    payloads = [json.loads(line.removeprefix("data: ")) for line in lines[1::2]]
    assert [p["type"] for p in payloads] == names
    assert payloads[1] == {"type": "ping"} and names[-1] == "message_stop"
    for payload in payloads[:1] + payloads[2:]:
        EVENTS.validate_python(payload)


def test_message_start_has_the_prompts_usage_and_no_stop_reason_yet(server):
    """message_start is what a client reads the prompt's token counts from before the
    answer; its message has no content and no stop reason yet."""
    client = client_of(server)
    ask = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "the same words again"}]}
    client.messages.create(**ask)  # the prompt is in the prefix cache now
    events = list(client.messages.create(stream=True, **ask))
    start, delta = events[0], next(e for e in events if e.type == "message_delta")
    assert start.type == "message_start" and start.message.content == []
    assert start.message.stop_reason is None and start.message.stop_sequence is None
    assert start.message.usage.cache_read_input_tokens > 0
    for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        assert getattr(start.message.usage, name) == getattr(delta.usage, name), name


def test_stop_sequence(server):
    client = client_of(server)
    message = client.messages.create(model=MODEL, max_tokens=40, messages=HI, stop_sequences=["k"])
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "k"
    assert "k" not in message.content[0].text
    with client.messages.stream(model=MODEL, max_tokens=40, messages=HI, stop_sequences=["k"]) as stream:
        streamed = stream.get_final_message()
    assert (streamed.stop_reason, streamed.stop_sequence) == ("stop_sequence", "k")
    assert streamed.content[0].text == message.content[0].text
    message = client.messages.create(model=MODEL, max_tokens=40, messages=HI, stop_sequences=["zzz"])
    assert message.stop_reason == "max_tokens"


def test_tool_use_and_its_result(start_server):
    live = start_server(ScriptedEngine("Checking. " + HERMES_CALL), chat_template=TOOL_TEMPLATE,
                        enable_auto_tool_choice=True, tool_call_parser="hermes")
    client = client_of(live)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    message = client.messages.create(model=MODEL, max_tokens=100, messages=ask, tools=[WEATHER])
    text, tool_use = message.content
    assert text.text == "Checking." and message.stop_reason == "tool_use"
    assert tool_use.type == "tool_use" and tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}
    with client.messages.stream(model=MODEL, max_tokens=100, messages=ask, tools=[WEATHER]) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[1].input == {"city": "Paris"} and streamed.stop_reason == "tool_use"
    history = ask + [{"role": "assistant", "content": [b.to_dict() for b in message.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id,
                                                   "content": "sunny"}]}]
    client.messages.create(model=MODEL, max_tokens=5, messages=history, tools=[WEATHER])
    assert live.engine.requests[-1][1]["prompt"] == \
        "user:Weather in Paris?;assistant:get_weather(Paris)Checking.;tool:sunny;"


def test_forced_tool_is_constrained(start_server):
    live = start_server(ScriptedEngine('{"city": "Paris"}'))
    message = client_of(live).messages.create(model=MODEL, max_tokens=50, messages=HI, tools=[WEATHER],
                                              tool_choice={"type": "tool", "name": "get_weather"})
    assert live.engine.requests[-1][2].structured_outputs.json == WEATHER["input_schema"]
    (tool_use,) = message.content
    assert tool_use.input == {"city": "Paris"} and message.stop_reason == "tool_use"


def test_thinking_blocks(start_server):
    live = start_server(ScriptedEngine("<think>Paris is in France.</think>It is sunny.", max_model_len=4096),
                        reasoning_parser="deepseek_r1")
    client = client_of(live)
    message = client.messages.create(model=MODEL, max_tokens=2000, messages=HI,
                                     thinking={"type": "enabled", "budget_tokens": 1024})
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Paris is in France." and text.text == "It is sunny."
    assert message.stop_reason == "end_turn"
    with client.messages.stream(model=MODEL, max_tokens=2000, messages=HI) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
    assert "thinking_delta" in kinds and "text_delta" in kinds
    again = client.messages.create(model=MODEL, max_tokens=20, messages=HI + [
        {"role": "assistant", "content": [b.to_dict() for b in message.content]},
        {"role": "user", "content": "And tomorrow?"}])
    assert again.content


def test_errors_have_anthropics_shape(start_server):
    live = start_server(FakeEngine(queue_limit=0))
    client = client_of(live)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=1000, messages=HI)
    assert info.value.body == {"type": "error", "error": {"type": "invalid_request_error",
                                                          "message": info.value.body["error"]["message"]}}
    message = info.value.body["error"]["message"]
    assert message.startswith("max_tokens:") and "1000 for the output" in message and "max_completion" not in message
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude-9", max_tokens=5, messages=HI)
    assert info.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model=MODEL, max_tokens=5, messages=HI)
    assert info.value.status_code == 503 and info.value.body["error"]["type"] == "overloaded_error"
    with live.http() as http:
        response = http.post("/v1/messages", json={"model": MODEL, "messages": HI})
        assert response.status_code == 400
        assert response.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                              "message": "max_tokens: required"}}
        response = http.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": HI, "max_tokens": 3})
        assert response.status_code == 400 and "max_tokens" in response.json()["error"]["message"]
        response = http.post("/v1/messages", content=b"{not json")
        assert response.status_code == 400 and response.json()["type"] == "error"


def test_a_failure_mid_stream_is_an_error_event(start_server):
    engine = FakeEngine()
    engine.fail_after = 2
    live = start_server(engine)
    with pytest.raises(anthropic.APIStatusError) as info:
        with client_of(live).messages.stream(model=MODEL, max_tokens=8, messages=HI) as stream:
            list(stream)
    assert info.value.body["error"]["type"] == "api_error"


def test_api_key_in_either_header(start_server):
    live = start_server(api_key=["secret"])
    assert client_of(live, api_key="secret").messages.create(model=MODEL, max_tokens=1, messages=HI).content
    bearer = anthropic.Anthropic(base_url=live.url, auth_token="secret", api_key=None, max_retries=0)
    assert bearer.messages.count_tokens(model=MODEL, messages=HI).input_tokens > 0
    with pytest.raises(anthropic.AuthenticationError) as info:
        client_of(live, api_key="wrong").messages.create(model=MODEL, max_tokens=1, messages=HI)
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "authentication_error"
    response = httpx.post(f"{live.url}/v1/chat/completions", headers={"x-api-key": "secret"},
                          json={"messages": HI, "max_tokens": 1})
    assert response.status_code == 200
    assert json.loads(httpx.get(f"{live.url}/v1/models").text)["error"]["code"] == "invalid_api_key"


def test_the_api_docs_list_both_new_apis(server):
    with server.http() as http:
        paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/messages", "/v1/messages/count_tokens", "/v1/responses", "/v1/responses/{response_id}",
            "/v1/responses/{response_id}/cancel"} <= set(paths)
