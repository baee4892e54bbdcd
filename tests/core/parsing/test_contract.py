"""The base classes: feed/finish/parse lifecycle, the step loop's guards, light imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fw.parsing import ReasoningParser, ToolParser
from fw.parsing.text import split_at_marker
from fw.parsing.tool_parser import call_from_json, call_from_object, dump_arguments


class BangParser(ToolParser):
    """A toy format: ``!name`` on its own is a call with no arguments."""

    special_tokens = ("!",)

    def _step(self, text, final):
        if not text.startswith("!"):
            safe, _ = split_at_marker(text, "!", final)
            if not safe:
                return None
            self._emit_content(text[:safe])
            return safe
        end = text.find(" ")
        if end < 0 and not final:
            return None
        end = len(text) if end < 0 else end
        self._emit_call(text[1:end], "{}")
        return end


def test_feed_finish_and_parse_agree():
    parser = BangParser()
    deltas = [parser.feed(piece) for piece in ["Hi ", "!lo", "ok", " bye"]] + [parser.finish()]
    assert "".join(d.content or "" for d in deltas) == "Hi  bye"
    assert [c.name for d in deltas for c in d.tool_calls] == ["look"]
    parsed = BangParser().parse("Hi !look bye")
    assert parsed.content == "Hi  bye" and parsed.tool_calls[0].name == "look"
    assert parsed.tool_calls[0].id.startswith("call_") and parsed.tools_called


def test_tokenizer_and_tools_are_kept_for_subclasses():
    tools = [{"type": "function", "function": {"name": "look"}}]
    parser = BangParser("tok", tools)
    assert parser.tokenizer == "tok" and parser.tools is tools


def test_lifecycle_misuse_is_an_error():
    parser = BangParser()
    parser.feed("x")
    with pytest.raises(RuntimeError, match="fresh parser"):
        parser.parse("y")
    parser.finish()
    with pytest.raises(RuntimeError, match="BangParser was already finished"):
        parser.feed("z")
    with pytest.raises(RuntimeError, match="already finished"):
        parser.finish()


def test_a_step_that_leaves_text_at_the_end_is_a_bug():
    class Lazy(ToolParser):
        def _step(self, text, final):
            return None

    with pytest.raises(RuntimeError, match="^Lazy left 3 characters undecided at the end of the stream$"):
        Lazy().parse("abc")


def test_a_step_that_never_progresses_is_a_bug():
    class Stuck(ReasoningParser):
        def _step(self, text, final):
            return 0

    with pytest.raises(RuntimeError, match="^Stuck makes no progress$"):
        Stuck().feed("abc")


def test_a_step_may_change_state_sixteen_times_in_a_row_between_characters():
    """Steps that consume nothing but change the parser's state are allowed, 16 in a
    row, however long the text pushed at once."""
    class Patient(ToolParser):
        def __init__(self, tokenizer=None, tools=None):
            super().__init__(tokenizer, tools)
            self.zeros = 0

        def _step(self, text, final):
            if self.zeros < 16:
                self.zeros += 1
                return 0
            self.zeros = 0
            self._emit_content(text[0])
            return 1

    text = "a long answer, pushed in one piece"
    assert Patient().parse(text).content == text


def test_call_from_object_accepts_what_models_write():
    assert call_from_object({"name": "f", "arguments": {"a": 1}}) == ("f", '{"a": 1}')
    assert call_from_object({"name": "f", "parameters": {"é": "日"}}) == ("f", '{"é": "日"}')
    assert call_from_object({"name": "f"}) == ("f", "{}")
    assert call_from_object({"name": "f", "arguments": '{"a": 1}'}) == ("f", '{"a": 1}')


@pytest.mark.parametrize("obj", [
    [], {"arguments": {}}, {"name": "", "arguments": {}}, {"name": 3},
    {"name": "f", "arguments": [1]}, {"name": "f", "arguments": "not json"},
    {"name": "f", "arguments": "[1]"},
])
def test_call_from_object_rejects_non_calls(obj):
    assert call_from_object(obj) is None


def test_call_from_json_rejects_invalid_and_non_standard_json():
    assert call_from_json('{"name": "f", "arguments": {"x": NaN}}') is None
    assert call_from_json('{"name": "f", "arguments": {}') is None
    assert call_from_json("[" * 100_000) is None


def test_lone_surrogates_stay_escaped():
    text = dump_arguments({"a": "\ud800", "b": "é"})
    text.encode("utf-8")
    assert text == '{"a": "\\ud800", "b": "\\u00e9"}'


def test_importing_the_parsers_does_not_import_torch_or_transformers():
    code = (
        "import sys, fw.parsing, fw.parsing.testkit\n"
        "from fw.plugins import registry\n"
        "for kind in ('tool_parser', 'reasoning_parser'):\n"
        "    for name in registry(kind).names(): registry(kind).load(name)\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", ["tool_parser", "reasoning_parser"])
def test_every_built_in_parser_keeps_what_the_server_gives_it(kind):
    """The server builds each parser with the model's tokenizer (and a tool parser with the
    request's tools); a plugin that extends a built-in parser finds them there."""
    from fw.plugins import registry

    tools = [{"type": "function", "function": {"name": "look"}}]
    names = [entry.name for entry in registry(kind).entries() if str(entry.target).startswith("fw_builtins.")]
    assert names
    for name in names:
        cls = registry(kind).load(name)
        parser = cls("tok", tools) if kind == "tool_parser" else cls("tok")
        assert parser.tokenizer == "tok", name
        if kind == "tool_parser":
            assert parser.tools is tools, name


def test_misuse_names_the_parser_class():
    from fw_builtins.tool_parsers.hermes import HermesToolParser

    parser = HermesToolParser()
    parser.feed("x")
    with pytest.raises(RuntimeError, match=r"^HermesToolParser\.parse\(\) needs a fresh parser; this one has "
                                           r"already been fed$"):
        parser.parse("y")


def test_call_ids_look_like_openais():
    import re

    ids = {BangParser().parse("!look").tool_calls[0].id for _ in range(5)}
    assert len(ids) == 5 and all(re.fullmatch(r"call_[0-9a-f]{24}", i) for i in ids)
