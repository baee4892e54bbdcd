"""Small helpers for deciding text as it streams in.

A streaming parser may only emit what no later text can change. These helpers answer
the two questions that keep coming up: "how much of this text is certainly not the
start of a marker?" and "is this whitespace part of the answer, or only padding next to
something that is not content?".
"""

from __future__ import annotations


def split_at_marker(text: str, marker: str, final: bool) -> tuple[int, bool]:
    """Where ``marker`` starts in ``text``, or how much of ``text`` is safe to emit.

    Returns ``(index, True)`` when the marker occurs, else ``(safe, False)`` where
    ``text[:safe]`` cannot be part of the marker: a trailing partial marker (``"<tool"``)
    is held back until more text decides it, unless this is the end of the stream.
    """
    index = text.find(marker)
    if index >= 0:
        return index, True
    if final:
        return len(text), False
    return len(text) - held_suffix_len(text, marker), False


def held_suffix_len(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0


class MarkerFilter:
    """Removes marker strings from a text stream, however the stream is chunked.

    A trailing piece that may still grow into a marker (``"[TOOL_"``) is held until the
    next text decides it, so a marker split across chunks is removed all the same.
    """

    def __init__(self, markers: tuple[str, ...]):
        self._markers = tuple(m for m in markers if m)
        self._held = ""

    def push(self, text: str) -> str:
        """Add text; returns the part that is decided, markers removed."""
        if not self._markers:
            return text
        text = self._remove(self._held + text)
        keep = max(held_suffix_len(text, m) for m in self._markers)  # markers is not empty
        self._held = text[len(text) - keep:]
        return text[:len(text) - keep]

    def flush(self) -> str:
        """End of the text (or something else comes next): what was held is text."""
        held, self._held = self._held, ""
        return held

    def _remove(self, text: str) -> str:
        changed = True
        while changed:  # removing one marker may join the pieces of another
            changed = False
            for marker in self._markers:
                if marker in text:
                    text, changed = text.replace(marker, ""), True
        return text


def skip_ws(text: str, index: int) -> int:
    """The index of the first non-whitespace character at or after ``index``."""
    while index < len(text) and text[index].isspace():
        index += 1
    return index


class EdgeTrim:
    """Drops the whitespace that pads a text stream where something else cuts into it.

    Models pad markers with newlines (``"Sure.\\n\\n<tool_call>"``, ``"</think>\\n\\n"``).
    That padding is not part of the answer when it sits at the edge of the text:
    before its first kept character after a ``cut()`` (or from the very start, with
    ``trim_start``), and after its last one when a ``cut()`` follows. Whitespace between
    two pieces of text stays, so a call in mid-answer does not glue sentences together.
    Trailing whitespace is therefore held until the next text decides it. All of this
    depends only on the text, never on its chunking, so streamed and non-streamed
    results stay equal.
    """

    def __init__(self, *, trim_start: bool = False):
        self._held = ""
        self._kept_any = False
        self._trim_start = trim_start
        self._cut = False

    def push(self, text: str) -> str:
        """Add text; returns the part that is now certain to be kept."""
        text = self._held + text
        kept = text.rstrip()
        self._held = text[len(kept):]
        if not kept:
            return ""
        if not self._kept_any and (self._trim_start or self._cut):
            kept = kept.lstrip()
        self._kept_any = True
        self._cut = False
        return kept

    def cut(self) -> None:
        """Something that is not this stream's text comes here."""
        self._cut = True

    def flush(self) -> str:
        """End of stream: held whitespace is kept unless a cut came after the text."""
        held, self._held = self._held, ""
        return "" if self._cut else held
