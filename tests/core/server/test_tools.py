"""Tool calling and reasoning through the chat API: auto (a parser reads the model's
text), required and named (enforced with structured outputs), reasoning split off."""

from __future__ import annotations

import json

import openai
import pytest

from fw.plugins import get_host
from tests.core.server.helpers import sse_events
from tests.core.server.scripted_engine import ScriptedEngine

HI = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
HERMES_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def streamed(live, **body):
    with live.http() as http:
        response = http.post("/v1/chat/completions", json={"model": "fake-model", "messages": HI,
                                                           "stream": True, **body})
    assert response.status_code == 200, response.text
    return [e for e in sse_events(response) if e != "[DONE]"]


def reassemble(events):
    """Concatenate streamed tool-call deltas per index; check the OpenAI shape on the way."""
    calls: dict[int, dict] = {}
    for event in events:
        for choice in event["choices"]:
            for delta in choice["delta"].get("tool_calls") or []:
                index = delta["index"]
                if index not in calls:
                    assert delta["id"] and delta["type"] == "function" and delta["function"]["name"]
                    calls[index] = {"id": delta["id"], "name": delta["function"]["name"], "arguments": ""}
                else:
                    assert "id" not in delta and "name" not in delta["function"]
                calls[index]["arguments"] += delta["function"].get("arguments", "")
    return [calls[i] for i in sorted(calls)]


@pytest.fixture
def hermes(start_server):
    return start_server(ScriptedEngine("Let me check. " + HERMES_CALL), enable_auto_tool_choice=True,
                        tool_call_parser="hermes")


def test_auto_tool_call(hermes):
    result = hermes.openai().chat.completions.create(model="fake-model", messages=HI, tools=[WEATHER])
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id and call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert choice.message.content == "Let me check."


def test_auto_tool_call_streamed(hermes):
    events = streamed(hermes, tools=[WEATHER])
    (call,) = reassemble(events)
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    content = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert content == "Let me check."
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"


def test_tool_choice_none_parses_nothing(hermes):
    result = hermes.openai().chat.completions.create(model="fake-model", messages=HI, tools=[WEATHER],
                                                     tool_choice="none")
    assert not result.choices[0].message.tool_calls
    assert result.choices[0].message.content.endswith("</tool_call>")
    assert result.choices[0].finish_reason == "stop"


def test_named_tool_choice_is_enforced_and_streamed(start_server):
    live = start_server(ScriptedEngine('{"city": "Paris"}'))
    named = {"type": "function", "function": {"name": "get_weather"}}
    result = live.openai().chat.completions.create(model="fake-model", messages=HI, tools=[WEATHER, TIME],
                                                   tool_choice=named)
    constraint = live.engine.requests[-1][2].structured_outputs
    assert constraint.json == WEATHER["function"]["parameters"] and constraint.param_name() == "tool_choice"
    (call,) = result.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert result.choices[0].finish_reason == "tool_calls" and result.choices[0].message.content is None
    (call,) = reassemble(streamed(live, tools=[WEATHER, TIME], tool_choice=named))
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}


def test_required_tool_choice(start_server):
    script = '[{"name": "get_weather", "parameters": {"city": "Paris"}}, {"name": "get_time", "parameters": {}}]'
    live = start_server(ScriptedEngine(script))
    result = live.openai().chat.completions.create(model="fake-model", messages=HI, tools=[WEATHER, TIME],
                                                   tool_choice="required", parallel_tool_calls=False)
    schema = live.engine.requests[-1][2].structured_outputs.json
    assert schema["type"] == "array" and schema["minItems"] == 1 and schema["maxItems"] == 1
    names = [c.function.name for c in result.choices[0].message.tool_calls]
    assert names == ["get_weather", "get_time"]
    assert len({c.id for c in result.choices[0].message.tool_calls}) == 2


@pytest.mark.parametrize("body,param,fragment", [
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice", "not among the tools"),
    ({"tool_choice": "required"}, "tool_choice", "needs tools"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools", "needs a name"),
    ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}},
     "tool_choice", "cannot be combined"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice", "must be"),
])
def test_bad_tool_requests_are_400s(hermes, body, param, fragment):
    with hermes.http() as http:
        response = http.post("/v1/chat/completions", json={"model": "fake-model", "messages": HI, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and fragment in error["message"]


def test_reasoning_is_split_off(start_server):
    live = start_server(ScriptedEngine("<think>Paris is in France.</think>It is sunny."),
                        reasoning_parser="deepseek_r1")
    message = live.openai().chat.completions.create(model="fake-model", messages=HI).choices[0].message
    assert message.content == "It is sunny."
    assert message.model_extra["reasoning_content"] == "Paris is in France."
    events = streamed(live)
    deltas = [c["delta"] for e in events for c in e["choices"]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Paris is in France."
    assert "".join(d.get("content") or "" for d in deltas) == "It is sunny."


def test_reasoning_then_tool_call(start_server):
    live = start_server(ScriptedEngine("<think>I should call it.</think>" + HERMES_CALL),
                        reasoning_parser="qwen3", enable_auto_tool_choice=True, tool_call_parser="hermes")
    message = live.openai().chat.completions.create(model="fake-model", messages=HI, tools=[WEATHER]).choices[0].message
    assert message.model_extra["reasoning_content"] == "I should call it."
    assert message.tool_calls[0].function.name == "get_weather"


def test_unknown_parser_stops_start_up(start_server):
    with pytest.raises(RuntimeError) as info:
        start_server(ScriptedEngine("x"), enable_auto_tool_choice=True, tool_call_parser="nope")
    assert "unknown tool parser 'nope'" in str(info.value) and "hermes" in str(info.value)


def test_tool_parser_plugin_file(start_server, tmp_path):
    plugin = tmp_path / "shout_parser.py"
    plugin.write_text(
        "from fw import hookimpl\n"
        "from fw.parsing.messages import DeltaMessage, ToolCallDelta, merge_deltas\n"
        "from fw.parsing.tool_parser import ToolParser\n\n"
        "class Shout(ToolParser):\n"
        "    def feed(self, text):\n"
        "        self.text = getattr(self, 'text', '') + text\n"
        "        return DeltaMessage()\n"
        "    def finish(self):\n"
        "        name = getattr(self, 'text', '').strip()\n"
        "        if not name:\n"
        "            return DeltaMessage()\n"
        "        return DeltaMessage(tool_calls=[ToolCallDelta(0, 'call_1', 'function', name, '{}')])\n"
        "    def parse(self, text):\n"
        "        return merge_deltas([self.feed(text), self.finish()])\n\n"
        "@hookimpl\n"
        "def fw_register_tool_parsers(register):\n"
        "    register('shout', Shout)\n"
    )
    live = start_server(ScriptedEngine("get_time"), enable_auto_tool_choice=True, tool_call_parser="shout",
                        tool_parser_plugin=str(plugin))
    try:
        result = live.openai().chat.completions.create(model="fake-model", messages=HI, tools=[TIME])
        assert result.choices[0].message.tool_calls[0].function.name == "get_time"
    finally:
        get_host().unregister("file:shout_parser.py")  # keep other tests' registries clean


def test_past_tool_calls_reach_the_template_as_objects(start_server):
    template = ("{% for m in messages %}{% if m.tool_calls %}{{ m.tool_calls[0].function.arguments.city }}"
                "{% else %}{{ m.content }}{% endif %};{% endfor %}")
    live = start_server(ScriptedEngine("ok"), chat_template=template)
    history = HI + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    live.openai().chat.completions.create(model="fake-model", messages=history, tools=[WEATHER], tool_choice="none")
    assert live.engine.requests[-1][1]["prompt"] == "What is the weather in Paris?;Paris;sunny;"
