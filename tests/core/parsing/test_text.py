"""The streaming text helpers: marker hold-back and whitespace padding."""

from __future__ import annotations

import pytest

from fw.parsing.text import EdgeTrim, MarkerFilter, held_suffix_len, skip_ws, split_at_marker


@pytest.mark.parametrize("text, expected", [
    ("hello <tool", 5), ("hello <", 1), ("hello", 0), ("<tool_call", 10), ("", 0),
    ("a <tool_call>", 0),  # a whole marker is found, not held
])
def test_held_suffix_is_the_longest_partial_marker(text, expected):
    assert held_suffix_len(text, "<tool_call>") == expected


def test_split_at_marker_finds_holds_or_flushes():
    assert split_at_marker("ab<tool_call>cd", "<tool_call>", final=False) == (2, True)
    assert split_at_marker("ab <tool_c", "<tool_call>", final=False) == (3, False)
    assert split_at_marker("ab <tool_c", "<tool_call>", final=True) == (10, False)


def test_skip_ws():
    assert skip_ws("  \n x", 0) == 4
    assert skip_ws("   ", 1) == 3


def test_edge_trim_keeps_plain_text_exactly():
    trim = EdgeTrim()
    pieces = [trim.push(p) for p in ["  Sure.\n", "\n", "More", " \n"]]
    assert "".join(pieces) + trim.flush() == "  Sure.\n\nMore \n"


def test_edge_trim_drops_padding_at_a_cut_but_keeps_whitespace_between_text():
    trim = EdgeTrim()
    assert trim.push("Sure.\n") == "Sure."
    trim.cut()  # e.g. a tool call
    assert trim.push("\n") == ""
    assert trim.push("Done.") == "\n\nDone."
    assert trim.push("\n") == ""
    trim.cut()
    assert trim.push("\n  ") == ""
    assert trim.flush() == ""


def test_edge_trim_drops_leading_padding_after_a_cut_or_with_trim_start():
    cut_first = EdgeTrim()
    cut_first.cut()
    assert cut_first.push("\n\n") == "" and cut_first.push(" Done") == "Done"
    trimmed = EdgeTrim(trim_start=True)
    assert trimmed.push("\n Okay,") == "Okay," and trimmed.push(" so") == " so"


def test_a_marker_whose_pieces_join_when_another_is_removed_is_removed_too():
    markers = MarkerFilter(("[TOOL_CALLS]", "<|python_tag|>"))
    assert markers.push("a [TOOL_<|python_tag|>CALLS] b") == "a  b"


def test_edge_trim_hands_over_held_whitespace_only_once():
    """A second ``flush()`` must not repeat (or invent) the trailing whitespace."""
    trim = EdgeTrim()
    assert trim.push("Done. \n") == "Done."
    assert trim.flush() == " \n"
    assert trim.flush() == ""
    assert trim.push("x") == "x"


def test_marker_filter_holds_nothing_when_no_marker_can_start():
    """Text that cannot begin any marker is passed on whole, and nothing stays held."""
    markers = MarkerFilter(("[TOOL_CALLS]",))
    assert markers.push("plain text") == "plain text"
    assert markers.flush() == ""
    assert markers.push("a [TOOL_") == "a "
    assert markers.push("CALLS] b") == " b"
