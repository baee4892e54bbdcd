"""The engine shared by tool and reasoning parsers: a buffer and a decide-step loop.

A parser sees its text only through ``_step(text, final)``, where ``text`` is what is
not yet decided. Each step decides a prefix of it (emitting content, reasoning or a
tool call) and says how much it consumed. Because ``parse()`` is the same loop run on
the whole text at once, a parser whose steps depend only on the text (never on where
a chunk happened to end) gives the same result streamed and non-streamed.
"""

from __future__ import annotations

#: steps in a row that may consume nothing (each one changing the parser's state)
_MAX_IDLE_STEPS = 16


class IncrementalParser:
    """Buffering, the step loop and the once-only ``finish()``; subclasses add output."""

    def __init__(self) -> None:
        self._buffer = ""
        self._started = False
        self._finished = False

    def _step(self, text: str, final: bool) -> int | None:
        """Decide a prefix of ``text``; return how many characters it took.

        Return ``None`` to wait for more text, or ``0`` after changing state without
        consuming anything (the loop calls again at once). With ``final`` set there is
        no more text: the step must decide everything, so the buffer ends up empty.
        """
        raise NotImplementedError

    def _push(self, text: str, final: bool) -> None:
        if self._finished:
            raise RuntimeError(f"{type(self).__name__} was already finished")
        self._started = True
        self._buffer += text
        idle = 0
        while self._buffer:
            taken = self._step(self._buffer, final)
            if taken is None:
                break
            idle = idle + 1 if taken == 0 else 0
            if idle > _MAX_IDLE_STEPS:
                raise RuntimeError(f"{type(self).__name__} makes no progress")
            self._buffer = self._buffer[taken:]
        if final:
            if self._buffer:
                raise RuntimeError(
                    f"{type(self).__name__} left {len(self._buffer)} characters "
                    "undecided at the end of the stream")
            self._finished = True

    def _check_fresh(self) -> None:
        """``parse()`` runs a whole text through the parser, so it needs a new one."""
        if self._started:
            raise RuntimeError(
                f"{type(self).__name__}.parse() needs a fresh parser; this one has "
                "already been fed")
