"""qwen3: reasoning only inside a ``<think>`` block that opens the output."""

from __future__ import annotations

from fw.parsing.testkit import check_reasoning_parser
from fw_builtins.reasoning.qwen3 import Qwen3ReasoningParser


def parse(text):
    return check_reasoning_parser(Qwen3ReasoningParser, text)


def test_think_block_then_answer():
    text = "<think>\nThe user greets me.\n</think>\n\nHello! How can I help?"
    assert parse(text) == ("The user greets me.", "Hello! How can I help?")


def test_no_think_tags_is_all_content_unchanged():
    assert parse("\n\nHello there.\n") == (None, "\n\nHello there.\n")
    assert parse("<b>bold</b> move") == (None, "<b>bold</b> move")


def test_thinking_switched_off_leaves_an_empty_block():
    assert parse("<think>\n\n</think>\n\nHi") == (None, "Hi")


def test_an_end_tag_without_the_opening_one_is_content():
    assert parse("Answer.</think> more") == (None, "Answer.</think> more")


def test_truncated_reasoning_stays_reasoning():
    assert parse("<think>\nLet me see, 17 × 3 =") == ("Let me see, 17 × 3 =", None)


def test_unicode():
    assert parse("<think>用户在问好。</think>你好！😊") == ("用户在问好。", "你好！😊")


def test_reasoning_ended_once_decided():
    parser = Qwen3ReasoningParser()
    assert not parser.feed(" <thi") and not parser.reasoning_ended
    assert parser.feed("nk>x").reasoning == "x" and not parser.reasoning_ended
    parser.feed("</think>")
    assert parser.reasoning_ended
    plain = Qwen3ReasoningParser()
    assert plain.feed("Hello").content == "Hello" and plain.reasoning_ended


def test_a_partial_tag_at_the_end_is_what_it_says():
    """Held back in case it became a tag; at the end of the stream it is text."""
    assert parse("<thi") == (None, "<thi")
    assert parse("<think>Let me see.</thi") == ("Let me see.</thi", None)


def test_truncated_reasoning_keeps_its_last_characters():
    assert parse("<think>First add 2 and 2, then ") == ("First add 2 and 2, then ", None)
