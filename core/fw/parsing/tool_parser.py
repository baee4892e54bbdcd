"""The tool-call parser contract, and helpers for parsers that read JSON calls.

One parser instance serves one response. The server builds it as
``cls(tokenizer, tools)``, feeds it each new piece of detokenized text with ``feed()``,
and calls ``finish()`` once at the end of the stream; non-streaming responses call
``parse()``, which is defined as exactly that, so the two cannot disagree.

Rules every built-in follows, and the test kit (``fw.parsing.testkit``) checks:

* a tool call is emitted only once it is complete and valid, never retracted later;
  so text that may still become a marker or a call is held back until it is decided,
  and ``finish()`` flushes what is left;
* text that looked like a call but is not (malformed JSON, a truncated call) comes
  back as content, without the parser's marker tokens (``special_tokens``): they are
  control tokens of the model's format, never text for the user (``_emit_content``
  drops them wherever they appear in content);
* whitespace that only pads content against a call (``"Sure.\\n\\n<tool_call>"``) is
  dropped; whitespace between two pieces of content stays (``EdgeTrim``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from fw.parsing.messages import DeltaMessage, ParsedMessage, ToolCallDelta, merge_deltas
from fw.parsing.stream import IncrementalParser
from fw.parsing.text import EdgeTrim, MarkerFilter


class ToolParser(IncrementalParser):
    """Base class of tool-call parsers: subclasses implement ``_step``.

    ``_step`` (see ``IncrementalParser``) reports what it decides through
    ``_emit_content`` and ``_emit_call``.
    """

    #: Marker strings the parser must see in the text. The engine keeps them when
    #: detokenizing even with ``skip_special_tokens``, since some models define them as
    #: special tokens.
    special_tokens: tuple[str, ...] = ()

    def __init__(self, tokenizer: Any = None, tools: list[Any] | None = None):
        super().__init__()
        #: the model's Hugging Face tokenizer; None when parsing text alone (tests)
        self.tokenizer = tokenizer
        #: the request's OpenAI ``tools`` list, as the client sent it
        self.tools = tools
        self._content = EdgeTrim()
        self._markers = MarkerFilter(self.special_tokens)
        self._delta = DeltaMessage()
        self._calls = 0

    def feed(self, delta_text: str) -> DeltaMessage:
        """Take the next piece of generated text; return what is now decided."""
        self._push(delta_text, final=False)
        return self._take()

    def finish(self) -> DeltaMessage:
        """End of stream: decide and return everything still held back."""
        self._push("", final=True)
        self._add_content(self._content.push(self._markers.flush()))
        self._add_content(self._content.flush())
        return self._take()

    def parse(self, text: str) -> ParsedMessage:
        """The non-streamed result: ``feed(text)`` then ``finish()`` on a fresh parser."""
        self._check_fresh()
        return merge_deltas([self.feed(text), self.finish()])

    # -- for subclasses ------------------------------------------------------------------

    def _emit_content(self, text: str) -> None:
        self._add_content(self._content.push(self._markers.push(text)))

    def _emit_call(self, name: str, arguments: str) -> None:
        """A complete call: sent as one delta with its id, name and all arguments."""
        self._add_content(self._content.push(self._markers.flush()))
        self._content.cut()
        self._delta.tool_calls.append(ToolCallDelta(
            index=self._calls, id=self._new_call_id(), type="function",
            name=name, arguments=arguments,
        ))
        self._calls += 1

    def _new_call_id(self) -> str:
        """OpenAI-style: ``call_`` and 24 random characters."""
        return "call_" + secrets.token_hex(12)

    # -- internals -----------------------------------------------------------------------

    def _add_content(self, text: str) -> None:
        if text:
            self._delta.content = (self._delta.content or "") + text

    def _take(self) -> DeltaMessage:
        delta, self._delta = self._delta, DeltaMessage()
        return delta


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(text: str) -> Any:
    """``json.loads`` that rejects NaN/Infinity and turns every failure into ValueError."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def dump_arguments(arguments: dict[str, Any]) -> str:
    """Arguments as JSON text, non-ASCII kept readable.

    A lone surrogate (from an escape like ``"\\ud800"``) cannot be sent as UTF-8, so
    such arguments keep their escapes instead. Raises ValueError when too deeply nested.
    """
    try:
        text = json.dumps(arguments, ensure_ascii=False)
    except RecursionError as exc:
        raise ValueError("arguments nested too deeply") from exc
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(arguments)
    return text


def call_from_object(obj: Any, argument_keys: tuple[str, ...] = ("arguments", "parameters")
                     ) -> tuple[str, str] | None:
    """``(name, arguments JSON)`` from ``{"name": ..., "arguments": {...}}``, else None.

    Arguments may be missing (a call without arguments) or a string holding a JSON
    object, as some models write them; anything else is not a call.
    """
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    arguments = next((obj[key] for key in argument_keys if key in obj), {})
    if isinstance(arguments, str):
        try:
            arguments = loads_strict(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    try:
        return name, dump_arguments(arguments)
    except ValueError:
        return None


def call_from_json(text: str, argument_keys: tuple[str, ...] = ("arguments", "parameters")
                   ) -> tuple[str, str] | None:
    """``call_from_object`` of JSON text; None when it is not valid JSON."""
    try:
        obj = loads_strict(text)
    except ValueError:
        return None
    return call_from_object(obj, argument_keys)
