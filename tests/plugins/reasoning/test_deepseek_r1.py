"""deepseek_r1: reasoning up to ``</think>``, with or without the opening tag."""

from __future__ import annotations

from fw.parsing.testkit import check_reasoning_parser
from fw_builtins.reasoning.deepseek_r1 import DeepSeekR1ReasoningParser


def parse(text):
    return check_reasoning_parser(DeepSeekR1ReasoningParser, text)


def test_opening_tag_in_the_prompt_or_in_the_output():
    assert parse("Okay, 2 + 2.\n</think>\n\n**4**") == ("Okay, 2 + 2.", "**4**")
    assert parse("<think>\nOkay, 2 + 2.\n</think>\n\n**4**") == ("Okay, 2 + 2.", "**4**")


def test_whitespace_inside_the_answer_and_reasoning_is_kept():
    text = "Step 1.\n\nStep 2.</think>Line 1.\n\nLine 2.\n"
    assert parse(text) == ("Step 1.\n\nStep 2.", "Line 1.\n\nLine 2.\n")


def test_no_end_tag_means_all_reasoning():
    """Truncated while thinking (or the template's thinking never ended)."""
    assert parse("<think>Let me count: 1, 2, 3") == ("Let me count: 1, 2, 3", None)
    assert parse("Just an answer.") == ("Just an answer.", None)


def test_empty_reasoning_and_empty_answer():
    assert parse("<think>\n\n</think>\n\nHello") == (None, "Hello")
    assert parse("Thinking.</think>") == ("Thinking.", None)
    assert parse("") == (None, None)


def test_unicode_and_tags_inside_the_answer():
    text = "考えます。🙂</think>答え: <think> is just text here </think>"
    assert parse(text) == ("考えます。🙂", "答え: <think> is just text here </think>")


def test_reasoning_ended_and_streaming_hold_back():
    parser = DeepSeekR1ReasoningParser()
    assert parser.feed("Hmm").reasoning == "Hmm"
    # "\n" waits (padding if the reasoning ends here), "</th" waits (maybe the end tag)
    assert parser.feed(", ok\n</th").reasoning == ", ok"
    assert not parser.reasoning_ended
    delta = parser.feed("ink>\n\nYes")
    assert (delta.reasoning, delta.content) == (None, "Yes")
    assert parser.reasoning_ended


def test_marker_strings_are_declared():
    assert DeepSeekR1ReasoningParser.special_tokens == ("<think>", "</think>")


def test_a_partial_end_tag_at_the_end_is_reasoning_text():
    assert parse("Counting: 1, 2 </thin") == ("Counting: 1, 2 </thin", None)
