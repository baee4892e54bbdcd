"""Finding where a bracketed value (a JSON object, a Python list) ends, incrementally.

Trying ``json.loads`` on the whole buffer after every token costs quadratic time on
long arguments; this scanner reads each character once across calls and says when the
value that opened at ``start`` has closed. Only then does a parser decode it.
"""

from __future__ import annotations

_CLOSER = {"[": "]", "{": "}", "(": ")"}


class BracketScanner:
    """Tracks brackets and quoted strings from ``text[start]``, which must open a bracket.

    ``quotes`` are the characters that open strings: ``'"'`` for JSON, ``"'\\""`` for
    Python. Inside a string a backslash escapes the next character.
    """

    def __init__(self, start: int, quotes: str = '"'):
        self._pos = start
        self._quotes = quotes
        self._stack: list[str] = []
        self._quote: str | None = None
        self._escaped = False
        self._end: int | None = None

    def end(self, text: str) -> int | None:
        """The index just past the closing bracket, or None while the value is open.

        A closing bracket that does not match also ends the scan there, so text that
        can never become valid is decided at once instead of held to the end of the
        stream; decoding ``text[start:end]`` then fails and the caller gives up.
        ``text`` must extend the text of earlier calls; once found, the end stays put.
        """
        if self._end is not None:
            return self._end
        index = self._pos
        while index < len(text):
            char = text[index]
            index += 1
            if self._quote is not None:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == self._quote:
                    self._quote = None
            elif char in self._quotes:
                self._quote = char
            elif char in _CLOSER:
                self._stack.append(_CLOSER[char])
            elif char in ")]}":
                if not self._stack or self._stack.pop() != char or not self._stack:
                    self._end = index
                    return index
        self._pos = index
        return None
