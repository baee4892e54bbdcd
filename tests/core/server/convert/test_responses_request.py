"""Responses API requests as the chat pipeline's requests: items, tools, formats, refusals."""

from __future__ import annotations

import pytest

from fw.errors import InvalidParameterError, NotSupportedError
from fw.server.convert.responses_request import chat_request_of, input_messages
from fw.server.protocol.responses import ResponsesRequest

WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def convert(history=(), **body):
    return chat_request_of(ResponsesRequest(**body), list(history))


def test_a_string_is_one_user_message_after_the_instructions():
    chat = convert(input="Hi", instructions="Be brief.", max_output_tokens=7, temperature=0.5, top_k=3)
    assert [m.model_dump(exclude_unset=True) for m in chat.messages] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert (chat.max_completion_tokens, chat.temperature, chat.top_k) == (7, 0.5, 3)


def test_function_calls_join_the_assistant_turn_and_outputs_become_tool_messages():
    items = [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "Hm."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking.",
                                                              "annotations": [], "logprobs": []}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
    ]
    assert input_messages(items) == [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."}], "reasoning_content": "Hm.",
         "tool_calls": [
             {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
             {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny", "name": "get_weather"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "rain"}], "name": "get_weather"},
    ]


def test_a_call_without_a_message_opens_an_assistant_turn():
    messages = input_messages([{"role": "user", "content": "x"},
                               {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}])
    assert messages[1] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


def test_history_comes_before_the_new_input():
    history = [{"role": "user", "content": "first"},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "one"}]}]
    chat = convert(history, input="second")
    assert [m.model_dump(exclude_unset=True)["role"] for m in chat.messages] == ["user", "assistant", "user"]


def test_tools_tool_choice_and_text_format():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    chat = convert(input="x", tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"},
                   parallel_tool_calls=False,
                   text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}})
    assert chat.tools == [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather", "parameters": WEATHER["parameters"]}}]
    assert chat.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert chat.parallel_tool_calls is False
    assert chat.response_format.type == "json_schema"
    assert chat.response_format.json_schema.json_schema == schema
    assert convert(input="x", text={"format": {"type": "json_object"}}).response_format.type == "json_object"
    assert convert(input="x", text={"format": {"type": "text"}}).response_format is None


def test_strict_tools_need_a_forced_call():
    strict = {**WEATHER, "strict": True}
    with pytest.raises(NotSupportedError) as info:
        convert(input="x", tools=[strict])
    assert info.value.param == "tools" and "tools[0].strict" in info.value.message
    assert convert(input="x", tools=[strict], tool_choice="required").tool_choice == "required"


@pytest.mark.parametrize("body,param,fragment", [
    ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]},
     "input", "'input_image' content is not supported"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input", "'item_reference' items"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input", "input[0].role"),
    ({"input": [{"role": "user", "content": "x", "colour": "red"}]}, "input", "unrecognized field 'colour'"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input", "input[0].call_id"),
    ({"input": []}, "input", "at least one message"),
    ({"input": "x", "tools": [{"type": "web_search"}]}, "tools", "only function tools"),
    ({"input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice", "not supported"),
    ({"input": "x", "include": ["reasoning.encrypted_content"]}, "include", "not supported"),
    ({"input": "x", "truncation": "auto"}, "truncation", "not supported"),
    ({"input": "x", "reasoning": {"summary": "auto"}}, "reasoning.summary", "not generated"),
    ({"input": "x", "reasoning": {"effort": "minimal"}}, "reasoning.effort", "only low, medium and high"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema", "required"),
    ({"input": "x", "max_tool_calls": 2}, "max_tool_calls", "not supported"),
])
def test_refusals_name_the_parameter(body, param, fragment):
    with pytest.raises((InvalidParameterError, NotSupportedError)) as info:
        convert(**body)
    assert info.value.param == param and fragment in info.value.message


def test_null_fields_from_sdk_dumps_pass():
    item = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "id": None, "status": None,
            "namespace": None, "phase": None}
    assert input_messages([{"role": "user", "content": "x"}, item])[1]["tool_calls"][0]["id"] == "c"
