"""Structured outputs and forced tool calls on the real SmolLM2 behind `fw serve`."""

from __future__ import annotations

import json
import re

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.core.server.helpers import sse_events

pytestmark = pytest.mark.slow

MODEL = "SmolLM2-135M-Instruct"
ASK = [{"role": "user", "content": "Tell me about a person: name and age."}]
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 120}},
          "required": ["name", "age"]}
WEATHER = {"type": "function", "function": {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"]}}}
NAMED = {"type": "function", "function": {"name": "get_weather"}}
WEATHER_ASK = [{"role": "user", "content": "What is the weather like in Paris today?"}]


@pytest.fixture(scope="module")
def client(real_server):
    return openai.OpenAI(base_url=f"{real_server.url}/v1", api_key="x", max_retries=0)


def chat(client, messages=ASK, **kwargs):
    kwargs.setdefault("max_tokens", 60)
    return client.chat.completions.create(model=MODEL, messages=messages, temperature=0, **kwargs).choices[0]


def test_guided_choice(client):
    choice = chat(client, [{"role": "user", "content": "Is the sky blue? Answer yes or no."}],
                  extra_body={"guided_choice": ["yes", "no"]})
    assert choice.message.content in ("yes", "no")


def test_guided_regex(client):
    pattern = r"[0-9]{3}-[0-9]{4}"
    choice = chat(client, [{"role": "user", "content": "Give me a phone number."}],
                  extra_body={"guided_regex": pattern})
    assert re.fullmatch(pattern, choice.message.content)


def test_json_schema_response_format(client):
    choice = chat(client, response_format={"type": "json_schema",
                                           "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
    jsonschema.validate(json.loads(choice.message.content), PERSON)


def test_named_tool_call_validates(client):
    choice = chat(client, WEATHER_ASK, tools=[WEATHER], tool_choice=NAMED)
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and choice.finish_reason == "tool_calls"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


def test_required_gives_at_least_one_call(client):
    choice = chat(client, WEATHER_ASK, tools=[WEATHER], tool_choice="required", max_tokens=100)
    assert len(choice.message.tool_calls) >= 1
    for call in choice.message.tool_calls:
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


def test_none_gives_no_call(client):
    choice = chat(client, WEATHER_ASK, tools=[WEATHER], tool_choice="none", max_tokens=20)
    assert not choice.message.tool_calls and choice.message.content


def test_streamed_named_call_reassembles(real_server):
    with real_server.http() as http:
        response = http.post("/v1/chat/completions", json={
            "model": MODEL, "messages": WEATHER_ASK, "tools": [WEATHER], "tool_choice": NAMED,
            "stream": True, "temperature": 0, "max_tokens": 60})
    events = [e for e in sse_events(response) if e != "[DONE]"]
    deltas = [d for e in events for c in e["choices"] for d in c["delta"].get("tool_calls") or []]
    assert deltas[0]["id"] and deltas[0]["function"]["name"] == "get_weather"
    arguments = "".join(d["function"].get("arguments", "") for d in deltas)
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_invalid_schema_is_a_400_naming_the_parameter(real_server):
    with real_server.http() as http:
        response = http.post("/v1/chat/completions", json={
            "model": MODEL, "messages": ASK, "guided_regex": "(unclosed"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "guided_regex"


class Person(BaseModel):
    name: str = Field(max_length=20)
    age: int = Field(ge=0, le=120)


@pytest.mark.parametrize("backend", ["xgrammar", "guidance"])
def test_parse_with_a_pydantic_response_format(client, backend):
    completion = client.chat.completions.parse(model=MODEL, messages=ASK, response_format=Person, temperature=0,
                                               max_tokens=60, extra_body={"guided_decoding_backend": backend})
    message = completion.choices[0].message
    assert isinstance(message.parsed, Person), message.content
    assert message.parsed == Person.model_validate_json(message.content)

