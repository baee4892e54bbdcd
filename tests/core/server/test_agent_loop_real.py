"""A three-turn agent loop with the official openai SDK against the embedded SmolLM2,
whose chat template has no tool support: parallel tool calls come back with null content,
two tool results go back, the model answers, and a follow-up turn carries the whole
history (null content included) as the SDK sends it."""

from __future__ import annotations

import json

import openai
import pytest

pytestmark = pytest.mark.slow

MODEL = "SmolLM2-135M-Instruct"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}}, "required": ["city"]}}}
RESULTS = {"Paris": "sunny, 24 C", "Oslo": "rain, 9 C"}


@pytest.fixture(scope="module")
def client(real_server):
    return openai.OpenAI(base_url=f"{real_server.url}/v1", api_key="x", max_retries=0)


def test_three_turn_agent_loop(client):
    messages = [{"role": "system", "content": "Call get_weather once for each city the user names."},
                {"role": "user", "content": "What is the weather in Paris and in Oslo?"}]
    # Turn 1: the model must call tools; the calls come back with no content.
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], tool_choice="required",
                                           temperature=0, max_tokens=80).choices[0]
    assert first.finish_reason == "tool_calls" and first.message.content is None
    calls = first.message.tool_calls
    assert len(calls) >= 1 and all(c.function.name == "get_weather" for c in calls)
    # The SDK's own message object goes back into the history (content None, as agents send it).
    messages.append(first.message.model_dump(exclude_none=False))
    assert messages[-1]["content"] is None
    cities = {c.id: json.loads(c.function.arguments)["city"] for c in calls}
    if len(cities) == 1:
        # SmolLM2-135M makes one call here (greedy); an agent whose model called both cities
        # in parallel sends this history, which is what the next turns must take.
        other = next(city for city in RESULTS if city not in cities.values())
        messages[-1]["tool_calls"].append({"id": "call_second", "type": "function",
                                           "function": {"name": "get_weather", "arguments": json.dumps({"city": other})}})
        cities["call_second"] = other
    for call_id, city in cities.items():
        messages.append({"role": "tool", "tool_call_id": call_id, "content": RESULTS[city]})
    assert sum(m["role"] == "tool" for m in messages) == 2

    # Turn 2: with the two results, a final answer in text.
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], tool_choice="none",
                                            temperature=0, max_tokens=40).choices[0]
    assert second.message.content and not second.message.tool_calls
    messages.append({"role": "assistant", "content": second.message.content})

    # Turn 3: a follow-up over the whole history, streamed.
    messages.append({"role": "user", "content": "Which city is warmer?"})
    stream = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], temperature=0,
                                            max_tokens=20, stream=True, tool_choice="none")
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.strip()
