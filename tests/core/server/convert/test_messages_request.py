"""Anthropic Messages requests as the chat pipeline's requests: blocks, tools, thinking, refusals."""

from __future__ import annotations

import json

import pytest

from fw.errors import InvalidParameterError, NotSupportedError
from fw.server.convert.messages_request import chat_request_of
from fw.server.protocol.messages import CountTokensRequest, MessagesRequest

WEATHER = {"name": "get_weather", "description": "Current weather",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def convert(**body):
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    body.setdefault("max_tokens", 16)
    return chat_request_of(MessagesRequest(**body))


def messages_of(chat):
    return [m.model_dump(exclude_unset=True) for m in chat.messages]


def test_system_blocks_and_sampling():
    chat = convert(system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
                           {"type": "text", "text": "Be kind."}],
                   max_tokens=9, stop_sequences=["END"], temperature=0.2, top_p=0.9, top_k=5)
    assert messages_of(chat) == [{"role": "system", "content": "Be brief.\nBe kind."},
                                 {"role": "user", "content": "Hi"}]
    assert (chat.max_completion_tokens, chat.stop, chat.temperature, chat.top_p, chat.top_k) == \
        (9, ["END"], 0.2, 0.9, 5)


def test_tool_use_and_tool_result_round_trip():
    chat = convert(messages=[
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Two calls.", "signature": ""},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "no data"}],
             "is_error": True},
            {"type": "text", "text": "Thanks."}]},
    ], tools=[WEATHER], tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    messages = messages_of(chat)
    assert messages[1] == {"role": "assistant", "content": "Checking.", "reasoning_content": "Two calls.",
                           "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "t2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]}
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "sunny", "name": "get_weather"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: no data", "name": "get_weather"},
        {"role": "user", "content": "Thanks."}]
    assert chat.tools[0]["function"]["parameters"] == WEATHER["input_schema"]
    assert chat.tool_choice == "auto" and chat.parallel_tool_calls is False


@pytest.mark.parametrize("choice,expected", [
    ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
])
def test_tool_choice(choice, expected):
    assert convert(tools=[WEATHER], tool_choice=choice).tool_choice == expected


def test_thinking_and_output_config():
    chat = convert(max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 1024},
                   output_config={"effort": "high", "format": {"type": "json_schema", "schema": {"type": "object"}}})
    assert chat.chat_template_kwargs == {"enable_thinking": True}
    assert chat.reasoning_effort == "high"
    assert chat.response_format.json_schema.json_schema == {"type": "object"}
    assert convert(thinking={"type": "disabled"}).chat_template_kwargs == {"enable_thinking": False}


def test_count_tokens_request_has_no_sampling_fields():
    chat = chat_request_of(CountTokensRequest(messages=[{"role": "user", "content": "Hi"}], system="S"))
    assert chat.max_completion_tokens is None and len(chat.messages) == 2


@pytest.mark.parametrize("body,param,fragment", [
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "messages",
     "'image' blocks are not supported"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages", "must be user or assistant"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}]},
     "messages", "belong in assistant turns"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "flavour": 1}]}]}, "messages",
     "unrecognized field 'flavour'"),
    ({"messages": []}, "messages", "at least one message"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools", "not supported"),
    ({"tools": [{"name": "f"}]}, "tools", "input_schema"),
    ({"tools": [{**WEATHER, "strict": True}]}, "tools", "tools[0].strict"),
    ({"tools": [WEATHER], "tool_choice": {"type": "sometimes"}}, "tool_choice", "must be"),
    ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "thinking.budget_tokens", "at least 1024"),
    ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking.budget_tokens", "less than max_tokens"),
    ({"output_config": {"effort": "max"}}, "output_config.effort", "only low, medium and high"),
    ({"metadata": {"user_id": "u", "team": "t"}}, "metadata", "unrecognized field 'team'"),
])
def test_refusals_name_the_parameter(body, param, fragment):
    with pytest.raises((InvalidParameterError, NotSupportedError)) as info:
        convert(**body)
    assert info.value.param == param and fragment in info.value.message


def test_tool_use_input_is_sent_as_json_arguments():
    chat = convert(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {"n": [1, 2]}}]}])
    assert json.loads(messages_of(chat)[1]["tool_calls"][0]["function"]["arguments"]) == {"n": [1, 2]}
