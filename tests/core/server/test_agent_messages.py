"""Agent-loop requests as the official openai SDK sends them, and OpenAI's request checks
(the fake engine; the same loop against SmolLM2 is in test_agent_loop_real.py)."""

from __future__ import annotations

import json

import openai
import pytest

from tests.core.server.scripted_engine import ScriptedEngine

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
#: a plain-chat template, like SmolLM2's: no tool support, string concatenation
PLAIN = "{% for m in messages %}{{ '<' + m['role'] + '>' + m['content'] }}{% endfor %}<assistant>"


def history():
    """user -> assistant (two parallel calls, content null) -> two tool results."""
    calls = [{"id": f"call_{i}", "type": "function",
              "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}
             for i, city in enumerate(("Paris", "Oslo"))]
    return [{"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "rain"}]}]


def test_tool_results_after_null_content_reach_a_plain_template(start_server):
    live = start_server(ScriptedEngine("Sunny in Paris, rain in Oslo."), chat_template=PLAIN)
    result = live.openai().chat.completions.create(model="fake-model", messages=history(), tools=[WEATHER],
                                                   tool_choice="none")
    assert result.choices[0].message.content == "Sunny in Paris, rain in Oslo."
    prompt = live.engine.requests[-1][1]["prompt"]
    assert prompt == ('<user>Weather in Paris and Oslo?<assistant>[{"name": "get_weather", "parameters": '
                      '{"city": "Paris"}}, {"name": "get_weather", "parameters": {"city": "Oslo"}}]'
                      "<tool>sunny<tool>rain<assistant>")


def test_a_malformed_mistral_call_leaves_no_marker_in_content(start_server):
    live = start_server(ScriptedEngine('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": }}]'),
                        enable_auto_tool_choice=True, tool_call_parser="mistral")
    client = live.openai()
    message = client.chat.completions.create(model="fake-model", messages=history()[:1], tools=[WEATHER]).choices[0].message
    assert not message.tool_calls and "[TOOL_CALLS]" not in message.content
    assert message.content.strip().startswith('[{"name": "get_weather"')
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(
        model="fake-model", messages=history()[:1], tools=[WEATHER], stream=True) if chunk.choices)
    assert streamed == message.content


@pytest.mark.parametrize("seed", [2**63, -(2**63) - 1])
def test_seed_must_be_a_64_bit_integer(server, seed):
    with pytest.raises(openai.BadRequestError) as info:
        server.openai().chat.completions.create(model="fake-model", messages=history()[:1], seed=seed)
    assert info.value.body["param"] == "seed"
    server.openai().chat.completions.create(model="fake-model", messages=history()[:1], seed=2**63 - 1, max_tokens=2)


@pytest.mark.parametrize("message, param_text", [
    ({"role": "robot", "content": "hi"}, "'robot' is not a role"),
    ({"role": "user"}, "messages[0].content: required"),
    ({"role": "tool", "content": "x"}, "tool_call_id: required"),
])
def test_bad_messages_are_400s_naming_them(server, message, param_text):
    with server.http() as http:
        response = http.post("/v1/chat/completions", json={"model": "fake-model", "messages": [message]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "messages" and param_text in error["message"]
