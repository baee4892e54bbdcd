"""The Responses API on the real SmolLM2 behind `fw serve`, through the official openai
SDK; the chat completions API on the same server is the reference for what a
conversation should produce.

Greedy text is compared only between requests that meet the same prefix-cache state
(``warm`` runs the prompt once first): a prompt computed whole and one whose prefix
came from the cache run different kernels and may pick a different token (issue 22).
"""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

pytestmark = pytest.mark.slow

MODEL = "SmolLM2-135M-Instruct"
WEATHER = {"type": "function", "name": "get_weather", "description": "The current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                           "unit": {"enum": ["celsius", "fahrenheit"]}},
                          "required": ["city", "unit"]}}
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120}},
          "required": ["name", "age"]}


@pytest.fixture(scope="module")
def client(real_server):
    return openai.OpenAI(base_url=f"{real_server.url}/v1", api_key="x", max_retries=0)


def warm(client, messages):
    """Leave the prompt's full blocks in the prefix cache."""
    client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1, temperature=0)


def chat_text(client, messages, max_tokens):
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=max_tokens, temperature=0)
    return reply.choices[0].message.content, reply.usage.prompt_tokens


def test_text_multi_turn_and_stream_agree_with_chat(client):
    turns = [{"role": "user", "content": "What is the capital of France?"},
             {"role": "assistant", "content": "The capital of France is Paris."},
             {"role": "user", "content": "And of Italy?"}]
    warm(client, turns)
    response = client.responses.create(model=MODEL, input=turns, max_output_tokens=16, temperature=0,
                                       store=False)
    text, prompt_tokens = chat_text(client, turns, 16)
    assert response.output_text == text and response.usage.input_tokens == prompt_tokens
    events = list(client.responses.create(model=MODEL, input=turns, max_output_tokens=16, temperature=0,
                                          store=False, stream=True))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == text
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_previous_response_id_continues_the_conversation(client):
    first = client.responses.create(model=MODEL, input="My name is Ada. Say hello.", max_output_tokens=12,
                                    temperature=0, instructions="You are brief.")
    # instructions are not carried over (OpenAI's rule); the template's default system prompt applies
    history = [{"role": "user", "content": "My name is Ada. Say hello."},
               {"role": "assistant", "content": first.output_text},
               {"role": "user", "content": "What is my name?"}]
    warm(client, history)
    second = client.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id,
                                     max_output_tokens=12, temperature=0)
    text, prompt_tokens = chat_text(client, history, 12)
    assert second.output_text == text and second.usage.input_tokens == prompt_tokens
    assert second.usage.input_tokens_details.cached_tokens > 0  # the first turn's blocks were reused
    assert client.responses.retrieve(second.id).output_text == second.output_text


def test_named_tool_call_validates_and_its_result_goes_back(client):
    ask = "What is the weather like in Paris today?"
    response = client.responses.create(model=MODEL, input=ask, tools=[{**WEATHER, "strict": True}],
                                       tool_choice={"type": "function", "name": "get_weather"},
                                       max_output_tokens=60, temperature=0)
    (call,) = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    answer = client.responses.create(model=MODEL, previous_response_id=response.id, tools=[WEATHER],
                                     tool_choice="none", max_output_tokens=30, temperature=0,
                                     input=[{"type": "function_call_output", "call_id": call.call_id,
                                             "output": "Sunny, 24 degrees"}])
    assert answer.status in ("completed", "incomplete") and answer.output_text


def test_required_tool_call_streams(client):
    events = list(client.responses.create(model=MODEL, input="Weather in Rome and in Oslo?", tools=[WEATHER],
                                          tool_choice="required", max_output_tokens=120, temperature=0,
                                          stream=True, store=False))
    calls = [e.item for e in events if e.type == "response.output_item.done"]
    assert calls and all(c.type == "function_call" and c.name == "get_weather" for c in calls)
    for call in calls:
        jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])


def test_json_schema_output_validates(client):
    response = client.responses.create(model=MODEL, input="Tell me about a person: name and age.",
                                       max_output_tokens=60, temperature=0, store=False, text={"format": {
                                           "type": "json_schema", "name": "person", "schema": PERSON,
                                           "strict": True}})
    jsonschema.validate(json.loads(response.output_text), PERSON)


def test_errors(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_unknown")
    assert info.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="Hi", max_output_tokens=5000)
    assert info.value.body["param"] == "max_output_tokens" and "1024" in info.value.body["message"]
