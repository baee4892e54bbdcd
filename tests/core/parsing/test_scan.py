"""BracketScanner: where a JSON object or Python list ends, fed in pieces."""

from __future__ import annotations

import pytest

from fw.parsing.scan import BracketScanner


def scan_in_pieces(text: str, start: int = 0, quotes: str = '"', size: int = 1):
    scanner = BracketScanner(start, quotes)
    for stop in range(start + size, len(text) + size, size):
        end = scanner.end(text[:stop])
        if end is not None:
            return end
    return None


@pytest.mark.parametrize("text, end", [
    ('{"a": 1} tail', 8),
    ('{"a": "}]{"} x', 12),
    ('{"a": "\\"}"}!', 12),
    ('[{"a": [1, 2]}, {}];', 19),
])
def test_end_is_found_whole_and_piece_by_piece(text, end):
    assert BracketScanner(0).end(text) == end
    assert scan_in_pieces(text) == scan_in_pieces(text, size=3) == end


def test_scan_starts_at_the_given_index():
    assert BracketScanner(4).end('x = {"a": 1} y') == 12


def test_unclosed_value_is_open():
    assert BracketScanner(0).end('{"a": [1, 2') is None


def test_mismatched_bracket_ends_the_scan_early():
    assert BracketScanner(0).end('{"a": ]  and much more') == 7


def test_python_quotes():
    text = "[f(a='x]'), g(b=\"y'\")] rest"
    assert BracketScanner(0, quotes="'\"").end(text) == text.index(" rest")
    assert scan_in_pieces(text, quotes="'\"") == text.index(" rest")


def test_the_end_stays_put_when_more_text_comes():
    scanner = BracketScanner(0)
    assert scanner.end('{"a": {}}') == 9
    assert scanner.end('{"a": {}} }}') == 9


@pytest.mark.parametrize("text", ['{"a": X}', "{'a': 'x'}", '[None, True, XL]'])
def test_by_default_only_a_double_quote_opens_a_string(text):
    """The default scanner reads JSON: bare words and apostrophes (not JSON, but what
    models write) do not open strings, so the closing bracket still ends the value at
    once and the caller can reject it instead of holding it to the end of the stream."""
    assert BracketScanner(0).end(text + " rest") == len(text)
