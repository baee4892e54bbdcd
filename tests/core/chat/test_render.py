"""fw.chat: rendering messages with chat templates, without a server."""

from __future__ import annotations

import pytest

from fw.chat import load_chat_template, render_chat, resolve_chat_template
from fw.chat.content import detect_content_format
from fw.errors import InvalidParameterError, NotSupportedError


class Tok:
    """The few tokenizer attributes render_chat reads."""

    bos_token = "<s>"
    eos_token = "</s>"

    def __init__(self, chat_template=None):
        self.chat_template = chat_template


CHATML = ("{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{{ eos_token }}{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>{% endif %}")
HI = [{"role": "user", "content": "hi"}]


def test_renders_with_the_tokenizers_template_and_special_tokens():
    assert render_chat(Tok(CHATML), HI) == "<s><|user|>hi</s><|assistant|>"
    assert render_chat(Tok(CHATML), HI, add_generation_prompt=False) == "<s><|user|>hi</s>"


def test_explicit_template_wins():
    assert render_chat(Tok(CHATML), HI, chat_template="{{ messages[0].content }}!") == "hi!"


def test_continue_final_message_cuts_the_end_of_turn():
    messages = HI + [{"role": "assistant", "content": "Once upon"}]
    text = render_chat(Tok(CHATML), messages, add_generation_prompt=False, continue_final_message=True)
    assert text == "<s><|user|>hi</s><|assistant|>Once upon"
    with pytest.raises(InvalidParameterError, match="add_generation_prompt"):
        render_chat(Tok(CHATML), messages, continue_final_message=True)


def test_no_template_is_not_supported():
    with pytest.raises(NotSupportedError, match="no chat template"):
        render_chat(Tok(None), HI)


def test_template_exceptions_and_failures_are_invalid_parameters():
    strict = "{% if messages[0].role != 'system' %}{{ raise_exception('system first, please') }}{% endif %}"
    with pytest.raises(InvalidParameterError, match="system first, please") as err:
        render_chat(Tok(strict), HI)
    assert err.value.param == "messages"
    with pytest.raises(InvalidParameterError, match="not valid Jinja"):
        render_chat(Tok("{% for %}"), HI)
    with pytest.raises(InvalidParameterError):
        render_chat(Tok("{{ messages.__class__.__mro__ }}{{ ''.__class__.__subclasses__() }}"), HI)


def test_sandbox_blocks_attribute_escapes():
    with pytest.raises(InvalidParameterError):
        render_chat(Tok("{{ cycler.__init__.__globals__.os.system('true') }}"), HI)


def test_tools_documents_kwargs_and_helpers():
    template = ("{{ tools | tojson }}|{{ documents[0].title }}|{{ flavour }}|{{ '\u00e9' | tojson }}"
                "|{{ strftime_now('%Y') | length }}")
    text = render_chat(Tok(template), HI, tools=[{"name": "f"}], documents=[{"title": "d"}],
                       chat_template_kwargs={"flavour": "vanilla", "messages": "ignored"})
    assert text == '[{"name": "f"}]|d|vanilla|"\u00e9"|4'


def test_content_formats():
    parts = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    plain = "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert render_chat(Tok(plain), parts) == "a\nb"
    looping = "{% for m in messages %}{% for p in m['content'] %}[{{ p.text }}]{% endfor %}{% endfor %}"
    assert detect_content_format(looping) == "openai" and detect_content_format(plain) == "string"
    assert render_chat(Tok(looping), parts) == "[a][b]"
    assert render_chat(Tok(looping), HI) == "[hi]"
    assert render_chat(Tok(plain), HI, content_format="openai") == "[{'type': 'text', 'text': 'hi'}]"
    aliased = "{% for m in messages %}{% set c = m.content %}{% for p in c %}{{ p.text }}{% endfor %}{% endfor %}"
    assert detect_content_format(aliased) == "openai"


def test_non_text_parts_and_bad_messages():
    with pytest.raises(NotSupportedError, match="image_url"):
        render_chat(Tok(CHATML), [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])
    with pytest.raises(InvalidParameterError):
        render_chat(Tok(CHATML), [{"content": "no role"}])
    with pytest.raises(InvalidParameterError):
        render_chat(Tok(CHATML), [])


def test_tool_call_arguments_become_mappings():
    template = ("{% for m in messages %}{% for c in m.tool_calls or [] %}{{ c.function.arguments.city }}"
                "{% endfor %}{% endfor %}")
    messages = [{"role": "assistant", "content": None,
                 "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": '{"city": "Oslo"}'}}]}]
    assert render_chat(Tok(template), messages, add_generation_prompt=False) == "Oslo"


def test_named_templates():
    tok = Tok({"default": "D", "tool_use": "T"})
    assert resolve_chat_template(tok) == "D"
    assert resolve_chat_template(tok, tools=[{}]) == "T"


def test_load_chat_template(tmp_path):
    path = tmp_path / "t.jinja"
    path.write_text("{{ messages }}")
    assert load_chat_template(str(path)) == "{{ messages }}"
    assert load_chat_template("{% for m in messages %}{{ m.content }}\\n{% endfor %}") == \
        "{% for m in messages %}{{ m.content }}\n{% endfor %}"
    assert load_chat_template(None) is None
    with pytest.raises(ValueError, match="neither a readable file nor a Jinja template"):
        load_chat_template(str(tmp_path / "missing.jinja"))
