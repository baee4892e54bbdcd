"""fw.chat.conversation: agent-loop messages rendered with any template, checked as OpenAI does."""

from __future__ import annotations

import json

import pytest

from fw.chat import render_chat
from fw.errors import InvalidParameterError

#: SmolLM2-135M-Instruct's own template: no tool support, and `'\n' + content` breaks on None
SMOLLM2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
           "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
           "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
           "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
           "{% endif %}")
#: a template that reads tool calls and tool results itself (hermes-like)
TOOLS_AWARE = ("{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}"
               "<call>{{ c.function.name }} {{ c.function.arguments | tojson }}</call>{% endfor %}"
               "{% elif m.role == 'tool' %}<result id={{ m.tool_call_id }}>{{ m.content }}</result>"
               "{% else %}<{{ m.role }}>{{ m.content }}{% endif %}{% endfor %}")
#: reads the content as a list of parts
PARTS = "{% for m in messages %}{{ m.role }}:{% for p in m.content %}{{ p.text }}{% endfor %};{% endfor %}"


class Tok:
    bos_token = "<s>"
    eos_token = "</s>"

    def __init__(self, chat_template):
        self.chat_template = chat_template


def call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


#: one turn of an agent loop as the openai SDK sends it: parallel calls, content null
LOOP = [
    {"role": "user", "content": "Weather in Paris and Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [call("c1", "weather", {"city": "Paris"}),
                                                          call("c2", "weather", {"city": "Oslo"})]},
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "rain"}]},
]


def test_an_agent_loop_renders_with_a_template_without_tool_support():
    text = render_chat(Tok(SMOLLM2), LOOP)
    calls = '[{"name": "weather", "parameters": {"city": "Paris"}}, {"name": "weather", "parameters": {"city": "Oslo"}}]'
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWeather in Paris and Oslo?<|im_end|>\n"
        f"<|im_start|>assistant\n{calls}<|im_end|>\n"
        "<|im_start|>tool\nsunny<|im_end|>\n"
        "<|im_start|>tool\nrain<|im_end|>\n"
        "<|im_start|>assistant\n")


@pytest.mark.parametrize("assistant", [
    {"role": "assistant", "tool_calls": [call("c1", "weather", {"city": "Paris"})]},
    {"role": "assistant", "content": "", "tool_calls": [call("c1", "weather", {"city": "Paris"})]},
    {"role": "assistant", "content": None, "tool_calls": [call("c1", "weather", {"city": "Paris"})]},
])
def test_content_absent_empty_or_null_beside_tool_calls(assistant):
    messages = [{"role": "user", "content": "hi"}, assistant, {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
    assert render_chat(Tok(TOOLS_AWARE), messages) == (  # its own rendering, no calls as text
        '<user>hi<call>weather {"city": "Paris"}</call><result id=c1>ok</result>')
    assert "Paris" in render_chat(Tok(SMOLLM2), messages)
    assert render_chat(Tok(PARTS), messages, add_generation_prompt=False).startswith("user:hi;assistant:[{")


def test_text_before_the_calls_is_kept():
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [call("c1", "f", {})]}]
    assert '<|im_start|>assistant\nLet me look.\n\n[{"name": "f", "parameters": {}}]<|im_end|>' in \
        render_chat(Tok(SMOLLM2), messages)


def test_names_reach_the_template():
    template = "{% for m in messages %}{{ m.name }}:{{ m.content }};{% endfor %}"
    messages = [{"role": "user", "name": "ada", "content": "hi"}, {"role": "assistant", "name": "bot", "content": "yo"}]
    assert render_chat(Tok(template), messages) == "ada:hi;bot:yo;"


def test_developer_is_the_system_role_unless_the_template_names_it():
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert render_chat(Tok(SMOLLM2), messages).startswith("<|im_start|>system\nBe brief.<|im_end|>")
    own = "{% for m in messages %}{% if m.role == 'developer' %}DEV{% endif %}{{ m.content }};{% endfor %}"
    assert render_chat(Tok(own), messages) == "DEVBe brief.;hi;"


@pytest.mark.parametrize("message, field", [
    ({"role": "robot", "content": "hi"}, "messages[0].role: 'robot' is not a role"),
    ({"role": "user", "content": None}, "messages[0].content: required for a 'user' message"),
    ({"role": "system"}, "messages[0].content: required"),
    ({"role": "assistant", "content": None}, "required unless the message has tool_calls"),
    ({"role": "tool", "content": "x"}, "messages[0].tool_call_id: required"),
    ({"role": "assistant", "tool_calls": [{"type": "function"}]}, "messages[0].tool_calls[0]"),
    ({"role": "user", "content": "hi", "tool_calls": []}, "on an 'assistant' message"),
])
def test_messages_are_checked_as_openai_checks_them(message, field):
    with pytest.raises(InvalidParameterError, match=field.replace("[", r"\[").replace("]", r"\]")) as info:
        render_chat(Tok(SMOLLM2), [message])
    assert info.value.param == "messages"


def test_a_role_the_template_names_is_accepted():
    template = "{% for m in messages %}{% if m.role == 'ipython' %}PY:{% endif %}{{ m.content }};{% endfor %}"
    assert render_chat(Tok(template), [{"role": "ipython", "content": "42"}]) == "PY:42;"
