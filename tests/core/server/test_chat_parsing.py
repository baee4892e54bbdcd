"""Chat output parsing set up by the server: --tool-parser-plugin files that cannot be used
stop start-up with an error that says which file and why, and a parser name a file
registers is attributed to that file; with a reasoning parser, a structured-output
constraint starts after the model's reasoning, unless the prompt already ended it."""

from __future__ import annotations

import json
import types

import pytest

from fw import hookimpl
from fw.parsing import ReasoningParser, ToolParser
from fw.plugins import get_host, register_plugin
from tests.core.server.scripted_engine import ScriptedEngine


@pytest.fixture
def plugin_file(tmp_path):
    """``plugin_file(name, source)`` -> its path; whatever it registered is unregistered after."""
    names = []

    def write(name: str, source: str) -> str:
        path = tmp_path / name
        path.write_text(source)
        names.append(f"file:{name}")
        return str(path)

    yield write
    for name in names:
        get_host().unregister(name)


def start_with_plugin(start_server, path: str, parser: str = "hermes"):
    return start_server(ScriptedEngine("x"), enable_auto_tool_choice=True, tool_call_parser=parser,
                        tool_parser_plugin=path)


def test_a_missing_plugin_file_is_named(start_server, tmp_path):
    missing = str(tmp_path / "nowhere" / "parser.py")
    with pytest.raises(RuntimeError) as info:
        start_with_plugin(start_server, missing)
    assert "--tool-parser-plugin" in str(info.value) and missing in str(info.value)


def test_a_plugin_file_that_fails_to_import_is_named_with_its_error(start_server, plugin_file):
    path = plugin_file("crashing_parser.py", "import json\nVALUE = json.loads('{not json')\n")
    with pytest.raises(RuntimeError) as info:
        start_with_plugin(start_server, path)
    message = str(info.value)
    assert "--tool-parser-plugin" in message and path in message
    assert "JSONDecodeError" in message and "Expecting property name" in message


def test_a_parser_the_file_registers_is_attributed_to_the_file(start_server, plugin_file):
    """A plugin registers names as "module:Class" strings, imported when used: when that
    fails, the error says which plugin registered the name."""
    path = plugin_file("broken_parser.py",
                       "from fw import hookimpl\n\n"
                       "@hookimpl\n"
                       "def fw_register_tool_parsers(register):\n"
                       "    register('broken', 'no_such_module_for_fw_tests:Parser')\n")
    with pytest.raises(RuntimeError) as info:
        start_with_plugin(start_server, path, parser="broken")
    assert "registered by plugin 'file:broken_parser.py'" in str(info.value)
    assert "no_such_module_for_fw_tests" in str(info.value)



class FirstToolParser(ToolParser):
    """Calls the request's first tool, with what it was given as the arguments."""

    def _step(self, text, final):
        if not final:
            return None
        self._emit_call(self.tools[0]["function"]["name"],
                        json.dumps({"tools": len(self.tools), "eos": self.tokenizer.eos_token}))
        return len(text)


class EosReasoningParser(ReasoningParser):
    """All of the text is reasoning, after the tokenizer's EOS token."""

    def _step(self, text, final):
        if not final:
            return None
        self._emit_reasoning(f"{self.tokenizer.eos_token} {text}")
        self._end_reasoning()
        return len(text)


@pytest.fixture
def given_parsers():
    """Registers FirstToolParser as "first_tool" and EosReasoningParser as "eos_reasoning"."""
    plugin = types.ModuleType("given_parsers")

    @hookimpl
    def fw_register_tool_parsers(register):
        register("first_tool", FirstToolParser)

    @hookimpl
    def fw_register_reasoning_parsers(register):
        register("eos_reasoning", EosReasoningParser)

    plugin.fw_register_tool_parsers = fw_register_tool_parsers
    plugin.fw_register_reasoning_parsers = fw_register_reasoning_parsers
    unregister = register_plugin(plugin, "test:given_parsers")
    yield
    unregister()


TOOLS = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
         for name in ("get_weather", "get_time")]


def test_a_tool_parser_gets_the_models_tokenizer_and_the_requests_tools(start_server, given_parsers):
    live = start_server(ScriptedEngine("x"), enable_auto_tool_choice=True, tool_call_parser="first_tool")
    message = live.openai().chat.completions.create(model="fake-model", messages=Q, tools=TOOLS).choices[0].message
    (call,) = message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"tools": 2, "eos": live.engine.tokenizer.eos_token}


def test_a_reasoning_parser_gets_the_models_tokenizer(start_server, given_parsers):
    live = start_server(ScriptedEngine("hm"), reasoning_parser="eos_reasoning")
    message = live.openai().chat.completions.create(model="fake-model", messages=Q).choices[0].message
    assert message.model_extra["reasoning_content"] == f"{live.engine.tokenizer.eos_token} hm"

# -- where a structured-output constraint starts: after the model's reasoning ------------------

#: Qwen3's shape: assistant turns keep their reasoning in a think block, and the generation
#: prompt can close an empty one (thinking off) or open one (thinking forced on)
THINKING_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{% if m.reasoning_content %}<think>{{ m.reasoning_content }}</think>"
    "{% endif %}{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% if thinking == 'off' %}<think>\n\n</think>\n\n"
    "{% elif thinking == 'on' %}<think>\n{% endif %}{% endif %}"
)
Q = [{"role": "user", "content": "Weather?"}]
HISTORY = [{"role": "user", "content": "Hi"},
           {"role": "assistant", "content": "Hello.", "reasoning_content": "Greet back."}] + Q


def end_ids_sent(live, messages, **kwargs) -> tuple[int, ...] | None:
    """What the server told the engine: the token ids after which the JSON constraint starts."""
    live.openai().chat.completions.create(model="fake-model", messages=messages, max_tokens=1,
                                          response_format={"type": "json_object"}, **kwargs)
    return live.engine.extras[live.engine.requests[-1][0]]["reasoning_end_ids"]


@pytest.fixture
def thinking(start_server):
    return start_server(reasoning_parser="qwen3", chat_template=THINKING_TEMPLATE)


def think_end_ids(live) -> tuple[int, ...]:
    return tuple(live.engine.tokenizer.encode("</think>", add_special_tokens=False))


@pytest.mark.parametrize("messages", [Q, HISTORY], ids=["one turn", "history with reasoning"])
@pytest.mark.parametrize("mode", [None, "on"])
def test_the_constraint_waits_for_the_end_of_the_reasoning(thinking, messages, mode):
    """Whether the model opens the think block or the template does; a past turn's think
    block (Qwen3 keeps the reasoning of the turns since the last user message) ends nothing."""
    kwargs = {"extra_body": {"chat_template_kwargs": {"thinking": mode}}} if mode else {}
    assert end_ids_sent(thinking, messages, **kwargs) == think_end_ids(thinking)


@pytest.mark.parametrize("messages", [Q, HISTORY], ids=["one turn", "history with reasoning"])
def test_a_prompt_that_closed_the_reasoning_is_constrained_from_the_start(thinking, messages):
    assert end_ids_sent(thinking, messages, extra_body={"chat_template_kwargs": {"thinking": "off"}}) is None


def test_continuing_an_answer_whose_reasoning_is_over(thinking):
    done = Q + [{"role": "assistant", "content": "<think>Look it up.</think>\n"}]
    continued = {"add_generation_prompt": False, "continue_final_message": True}
    assert end_ids_sent(thinking, done, extra_body=continued) is None
    thinking_still = Q + [{"role": "assistant", "content": "<think>Look"}]
    assert end_ids_sent(thinking, thinking_still, extra_body=continued) == think_end_ids(thinking)


def test_no_reasoning_end_without_a_constraint_or_a_reasoning_parser(thinking, start_server):
    thinking.openai().chat.completions.create(model="fake-model", messages=Q, max_tokens=1)
    assert thinking.engine.extras[thinking.engine.requests[-1][0]]["reasoning_end_ids"] is None
    assert end_ids_sent(start_server(chat_template=THINKING_TEMPLATE), Q) is None


@pytest.mark.parametrize("script", ["<think>Is 3 <", "<think>Is 3 < 4</think>Yes <"],
                         ids=["cut inside the reasoning", "cut inside the content"])
def test_streamed_pieces_add_up_to_the_whole_message_when_the_output_is_cut(start_server, script):
    """What a parser holds back (a "<" that may start "</think>") comes out with the last
    chunk, as reasoning or content, as in the non-streamed message."""
    live = start_server(ScriptedEngine(script), reasoning_parser="deepseek_r1")
    client = live.openai()
    whole = client.chat.completions.create(model="fake-model", messages=Q).choices[0].message
    deltas = [c.choices[0].delta for c in client.chat.completions.create(model="fake-model", messages=Q,
                                                                         stream=True) if c.choices]
    # vLLM's older name of the reasoning field and its newer one
    for field in ("reasoning_content", "reasoning"):
        assert "".join(d.model_extra.get(field) or "" for d in deltas) == whole.model_extra[field]
    assert "".join(d.content or "" for d in deltas) == whole.content  # "" when it is all reasoning
    assert whole.model_extra["reasoning_content"].endswith("<") or whole.content.endswith("<")


@pytest.mark.parametrize("option,message,known", [
    (dict(reasoning_parser="nope"), "--reasoning-parser: unknown reasoning parser 'nope'", ("deepseek_r1", "qwen3")),
    (dict(tool_call_parser="nope", enable_auto_tool_choice=True), "--tool-call-parser: unknown tool parser 'nope'",
     ("hermes", "pythonic")),
], ids=["reasoning", "tool-call"])
def test_an_unknown_parser_stops_start_up_naming_its_flag_and_the_known_ones(start_server, option, message, known):
    with pytest.raises(RuntimeError) as info:
        start_server(ScriptedEngine("x"), **option)
    assert message in str(info.value)
    assert all(name in str(info.value) for name in known)


def test_the_engine_keeps_a_parsers_markers_that_are_special_tokens(start_server):
    """A model whose <tool_call> markers are special tokens: the detokenizer, which skips
    special tokens, must keep them or the parser never sees a call."""
    import copy

    engine = ScriptedEngine("x")
    engine.tokenizer = copy.deepcopy(engine.tokenizer)
    engine.tokenizer.add_special_tokens({"additional_special_tokens": ["<tool_call>", "</tool_call>"]})
    live = start_server(engine, enable_auto_tool_choice=True, tool_call_parser="hermes")
    client = live.openai()
    client.chat.completions.create(model="fake-model", messages=Q, tools=TOOLS)
    markers = frozenset(engine.tokenizer.convert_tokens_to_ids(["<tool_call>", "</tool_call>"]))
    assert engine.extras[engine.requests[-1][0]]["keep_special_ids"] == markers
    client.chat.completions.create(model="fake-model", messages=Q, tools=TOOLS, tool_choice="none")
    assert engine.extras[engine.requests[-1][0]]["keep_special_ids"] == frozenset()
