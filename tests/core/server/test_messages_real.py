"""Anthropic's Messages API on the real SmolLM2 behind `fw serve`, through the official
anthropic SDK; the chat completions API on the same server is the reference.

Greedy text is compared only between requests that meet the same prefix-cache state
(the prompt is run once first): a prompt computed whole and one whose prefix came from
the cache run different kernels and may pick a different token (issue 22). This SDK
has no temperature argument; fw takes it (and Anthropic's API does) as a body field.
"""

from __future__ import annotations

import json

import anthropic
import jsonschema
import openai
import pytest

pytestmark = pytest.mark.slow

MODEL = "SmolLM2-135M-Instruct"
WEATHER = {"name": "get_weather", "description": "The current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                             "unit": {"enum": ["celsius", "fahrenheit"]}},
                            "required": ["city", "unit"]}}
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120}},
          "required": ["name", "age"]}
GREEDY = {"temperature": 0}
TURNS = [{"role": "user", "content": "What is the capital of France?"},
         {"role": "assistant", "content": "The capital of France is Paris."},
         {"role": "user", "content": "And of Italy?"}]


@pytest.fixture(scope="module")
def client(real_server):
    return anthropic.Anthropic(base_url=real_server.url, api_key="x", max_retries=0)


def test_text_multi_turn_stream_and_count_agree_with_chat(client, real_server):
    chat_client = openai.OpenAI(base_url=f"{real_server.url}/v1", api_key="x", max_retries=0)
    messages = [{"role": "system", "content": "You are brief."}, *TURNS]
    chat_client.chat.completions.create(model=MODEL, max_tokens=1, temperature=0, messages=messages)  # warm
    message = client.messages.create(model=MODEL, max_tokens=16, system="You are brief.", messages=TURNS,
                                     extra_body=GREEDY)
    chat = chat_client.chat.completions.create(model=MODEL, max_tokens=16, temperature=0, messages=messages)
    assert message.content[0].text == chat.choices[0].message.content
    usage = message.usage
    total = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    assert total == chat.usage.prompt_tokens
    assert client.messages.count_tokens(model=MODEL, system="You are brief.", messages=TURNS).input_tokens == total
    with client.messages.stream(model=MODEL, max_tokens=16, system="You are brief.", messages=TURNS,
                                extra_body=GREEDY) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == message.content[0].text == final.content[0].text
    assert final.usage.cache_read_input_tokens > 0  # the same prompt again: read from the prefix cache


def test_forced_tool_use_validates_and_its_result_goes_back(client):
    ask = [{"role": "user", "content": "What is the weather like in Paris today?"}]
    message = client.messages.create(model=MODEL, max_tokens=60, extra_body=GREEDY, messages=ask, tools=[WEATHER],
                                     tool_choice={"type": "tool", "name": "get_weather"})
    (tool_use,) = message.content
    assert tool_use.type == "tool_use" and tool_use.name == "get_weather" and message.stop_reason == "tool_use"
    jsonschema.validate(tool_use.input, WEATHER["input_schema"])
    history = ask + [{"role": "assistant", "content": [tool_use.to_dict()]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id,
                                                   "content": "Sunny, 24 degrees"}]}]
    answer = client.messages.create(model=MODEL, max_tokens=30, extra_body=GREEDY, messages=history, tools=[WEATHER],
                                    tool_choice={"type": "none"})
    assert answer.content[0].type == "text" and answer.content[0].text
    assert answer.stop_reason in ("end_turn", "max_tokens")


def test_any_tool_streams_input_json(client):
    with client.messages.stream(model=MODEL, max_tokens=120, extra_body=GREEDY, tools=[WEATHER],
                                tool_choice={"type": "any"},
                                messages=[{"role": "user", "content": "Weather in Rome?"}]) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert uses and final.stop_reason == "tool_use"
    for use in uses:
        jsonschema.validate(use.input, WEATHER["input_schema"])


def test_json_schema_output_validates(client):
    message = client.messages.create(
        model=MODEL, max_tokens=60, extra_body=GREEDY,
        messages=[{"role": "user", "content": "Tell me about a person: name and age."}],
        output_config={"format": {"type": "json_schema", "schema": PERSON}})
    jsonschema.validate(json.loads(message.content[0].text), PERSON)


def test_errors(client):
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=5000, messages=TURNS)
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in info.value.body["error"]["message"] and "1024" in info.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=TURNS)
    assert info.value.body["error"]["type"] == "not_found_error"
