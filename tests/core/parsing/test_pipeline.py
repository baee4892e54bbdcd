"""OutputParser: reasoning is split off first, then tool calls are parsed from content."""

from __future__ import annotations

import pytest

from fw.parsing import DeltaMessage, OutputParser, ReasoningParser
from fw.parsing.testkit import check_output_parser
from fw_builtins.reasoning.deepseek_r1 import DeepSeekR1ReasoningParser
from fw_builtins.reasoning.qwen3 import Qwen3ReasoningParser
from fw_builtins.tool_parsers.hermes import HermesToolParser

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_a_call_inside_the_reasoning_is_not_a_call():
    text = f"<think>\nI could write {CALL} here.\n</think>\n\nLet me look.\n{CALL}"
    parsed = check_output_parser(Qwen3ReasoningParser, HermesToolParser, text)
    assert parsed.reasoning == f"I could write {CALL} here."
    assert parsed.content == "Let me look."
    assert [c.name for c in parsed.tool_calls] == ["get_weather"]


def test_reasoning_without_tools_and_tools_without_reasoning():
    parsed = check_output_parser(DeepSeekR1ReasoningParser, None, "Hmm.</think>Answer")
    assert (parsed.reasoning, parsed.content, parsed.tool_calls) == ("Hmm.", "Answer", [])
    parsed = check_output_parser(None, HermesToolParser, CALL)
    assert parsed.reasoning is None and parsed.content is None and parsed.tools_called
    parsed = check_output_parser(None, None, " plain ")
    assert parsed.content == " plain "


def test_reasoning_ended_follows_the_reasoning_parser():
    output = OutputParser(DeepSeekR1ReasoningParser(), HermesToolParser())
    assert not output.reasoning_ended
    assert output.feed("Thinking</thi").reasoning == "Thinking"
    assert not output.reasoning_ended
    assert output.feed("nk>{").content == "{"
    assert output.reasoning_ended
    assert OutputParser(tools=HermesToolParser()).reasoning_ended


def test_special_tokens_of_both_parsers_are_kept():
    output = OutputParser(Qwen3ReasoningParser(), HermesToolParser())
    assert set(output.special_tokens) == {"<think>", "</think>", "<tool_call>", "</tool_call>"}


def test_parse_needs_fresh_parsers():
    output = OutputParser(tools=HermesToolParser())
    output.feed("x")
    with pytest.raises(RuntimeError, match=r"^OutputParser.parse\(\) needs fresh parsers$"):
        output.parse("y")


@pytest.mark.parametrize("reasoning", [None, Qwen3ReasoningParser])
def test_text_a_tool_parser_held_back_is_content_at_the_end(reasoning):
    """A partial tool-call marker at the end of the stream was not a marker after all."""
    parsed = check_output_parser(reasoning, HermesToolParser, "The tag starts with <tool_ca")
    assert (parsed.content, parsed.tool_calls) == ("The tag starts with <tool_ca", [])


class DecidesAtTheEnd(ReasoningParser):
    """A plugin's reasoning parser may hold everything back until the stream ends."""

    def _step(self, text: str, final: bool) -> int | None:
        if not final:
            return None
        self._end_reasoning()
        self._emit_content(text)
        return len(text)


def test_a_call_released_only_at_the_end_is_still_a_call():
    output = OutputParser(DecidesAtTheEnd(), HermesToolParser())
    assert output.feed(f"Checking.\n{CALL}") == DeltaMessage()
    last = output.finish()
    assert last.content == "Checking." and [c.name for c in last.tool_calls] == ["get_weather"]
    assert [c.name for c in check_output_parser(DecidesAtTheEnd, HermesToolParser, CALL).tool_calls] == [
        "get_weather"]
