"""The test kit: its chunkings, and that it catches the bugs it exists to catch."""

from __future__ import annotations

import json

import pytest

from fw.parsing import DeltaMessage, ParsedMessage, ToolCallDelta, ToolParser
from fw.parsing.testkit import (
    check_tool_parser, chunkings, random_pieces, token_pieces, word_pieces,
)
from fw.parsing.text import split_at_marker
from tests.core.parsing.tiny_tokenizer import tiny_tokenizer

TEXT = 'Hi <call>{"name": "f", "arguments": {"city": "東京"}}</call> bye'


class MarkerParser(ToolParser):
    """A correct parser of ``<call>{json}</call>``, for the kit to pass."""

    special_tokens = ("<call>", "</call>")

    def _step(self, text, final):
        if not text.startswith("<call>"):
            safe, _ = split_at_marker(text, "<call>", final)
            if safe:
                self._emit_content(text[:safe])
            return safe or None
        end = text.find("</call>")
        if end < 0:
            if not final:
                return None
            end = len(text) - len("</call>")
        obj = json.loads(text[len("<call>"):end])
        self._emit_call(obj["name"], json.dumps(obj["arguments"], ensure_ascii=False))
        return end + len("</call>")


class NoHoldBack(MarkerParser):
    """Bug: emits a partial marker as content instead of waiting for the rest."""

    def _step(self, text, final):
        if not text.startswith("<call>") and "<call>" not in text:
            self._emit_content(text)
            return len(text)
        return super()._step(text, final)


class HandWritten:
    """A parser written from scratch (no base class) that forgets its end-of-stream flush."""

    special_tokens = ()

    def __init__(self, tokenizer=None, tools=None):
        self.held = ""

    def feed(self, text):
        text, self.held = self.held + text, ""
        if text.endswith("e"):
            text, self.held = text[:-1], "e"
        return DeltaMessage(content=text or None)

    def finish(self):
        return DeltaMessage()

    def parse(self, text):
        return ParsedMessage(content=text)


class NamelessFirstDelta(MarkerParser):
    """Bug: sends the call's arguments before its id and name."""

    def _emit_call(self, name, arguments):
        self._delta.tool_calls.append(ToolCallDelta(index=0, arguments=arguments))


class ListArguments(MarkerParser):
    """Bug: arguments that are JSON, but not an object."""

    def _emit_call(self, name, arguments):
        super()._emit_call(name, "[1]")


def test_a_correct_parser_passes_and_its_result_is_returned():
    parsed = check_tool_parser(MarkerParser, TEXT)
    assert parsed.content == "Hi  bye"
    assert [(c.name, json.loads(c.arguments)) for c in parsed.tool_calls] == [
        ("f", {"city": "東京"})]


@pytest.mark.parametrize("parser, message", [
    (NoHoldBack, "streamed 1 character at a time differs"),
    (HandWritten, "differs from parse"),
    (NamelessFirstDelta, "must carry id"),
    (ListArguments, "not a JSON object"),
])
def test_broken_parsers_are_caught(parser, message):
    with pytest.raises(AssertionError, match=message):
        check_tool_parser(parser, TEXT)


def test_chunkings_cover_every_cut_and_rebuild_the_text():
    cuts = chunkings(TEXT, special_tokens=("<call>",), seed=7, random_runs=2)
    assert list(cuts) == ["1 character", "1 token", "random (seed 7)", "random (seed 8)", "whole"]
    assert all("".join(pieces) == TEXT for pieces in cuts.values())
    assert cuts["1 character"] == list(TEXT) and cuts["whole"] == [TEXT]


def test_word_pieces_keep_special_tokens_whole():
    pieces = word_pieces("Hi, <call>{x}</call> ok", special_tokens=("<call>", "</call>"))
    assert pieces == ["Hi", ",", " ", "<call>", "{", "x", "}", "</call>", " ok"]


def test_random_pieces_are_reproducible():
    assert random_pieces(TEXT, 3) == random_pieces(TEXT, 3) != random_pieces(TEXT, 4)
    assert all(1 <= len(p) <= 8 for p in random_pieces(TEXT, 3))


def test_token_pieces_follow_a_real_tokenizer():
    tokenizer = tiny_tokenizer([TEXT], special_tokens=["<call>", "</call>"])
    pieces = token_pieces(TEXT, tokenizer)
    assert "".join(pieces) == TEXT
    assert "<call>" in pieces and "</call>" in pieces
    # multi-byte characters come out whole, never as replacement characters
    assert not any("\ufffd" in piece for piece in pieces)
    check_tool_parser(MarkerParser, TEXT, tokenizer=tokenizer)
