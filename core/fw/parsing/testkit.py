"""The property every parser must have, as a checker any parser's tests can call.

Streaming is where tool calling breaks: a marker split across two chunks, a call
emitted and then found to be malformed, a flush forgotten at the end. The checker runs
a parser over the same text cut in several ways (one character at a time, one token at
a time, random-sized chunks, whole) and asserts that the deltas add up, under the
streaming contract of ``merge_deltas``, to exactly the non-streamed ``parse()``.

Third-party parser tests use it like the built-ins' do::

    from fw.parsing.testkit import check_tool_parser
    parsed = check_tool_parser(MyParser, model_output, tools=tools)
    assert parsed.tool_calls[0].name == "get_weather"
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Callable, Iterable

from fw.parsing.messages import DeltaMessage, ParsedMessage, ReasoningDelta, merge_deltas
from fw.parsing.pipeline import OutputParser


def word_pieces(text: str, special_tokens: Iterable[str] = ()) -> list[str]:
    """Cut text roughly as a BPE tokenizer would, without needing one.

    Words carry their leading space, punctuation stands alone, and each special token
    stays whole (a real tokenizer has one id for it).
    """
    specials = "|".join(re.escape(t) for t in sorted(
        (t for t in special_tokens if t), key=len, reverse=True))
    alternatives = [specials, rf"\s+(?={specials})"] if specials else []
    alternatives += [r"\s*\w+", r"\s*[^\w\s]", r"\s+"]
    return re.findall("|".join(alternatives), text)


def token_pieces(text: str, tokenizer: Any) -> list[str]:
    """The text each token adds when a Hugging Face tokenizer decodes incrementally.

    A token that ends inside a multi-byte character adds nothing until the character
    is complete, as in a real detokenizer.
    """
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces, previous = [], ""
    for count in range(1, len(ids) + 1):
        current = tokenizer.decode(ids[:count], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
        if current.endswith("\ufffd") and count < len(ids):
            continue
        if not current.startswith(previous):
            raise ValueError("the tokenizer's incremental decoding is not prefix-stable")
        pieces.append(current[len(previous):])
        previous = current
    if previous != text:
        raise ValueError("the tokenizer does not reproduce the text; pick another text")
    return pieces


def random_pieces(text: str, seed: int, max_size: int = 8) -> list[str]:
    """Chunks of 1..max_size characters, reproducible from ``seed``."""
    rng = random.Random(seed)
    pieces, index = [], 0
    while index < len(text):
        size = rng.randint(1, max_size)
        pieces.append(text[index:index + size])
        index += size
    return pieces


def chunkings(text: str, *, tokenizer: Any = None, special_tokens: Iterable[str] = (),
              seed: int = 0, random_runs: int = 3) -> dict[str, list[str]]:
    """Every way of cutting ``text`` the checkers try, by name."""
    cuts = {
        "1 character": list(text),
        "1 token": (token_pieces(text, tokenizer) if tokenizer is not None
                    else word_pieces(text, special_tokens)),
    }
    for run in range(random_runs):
        cuts[f"random (seed {seed + run})"] = random_pieces(text, seed + run)
    cuts["whole"] = [text]
    return cuts


def check_tool_parser(parser_cls: type, text: str, *, tokenizer: Any = None,
                      tools: list[Any] | None = None, seed: int = 0,
                      random_runs: int = 3) -> ParsedMessage:
    """Assert the streaming property for a tool parser; returns the parsed message."""
    return _check(lambda: parser_cls(tokenizer, tools), text, parser_cls.special_tokens,
                  tokenizer, seed, random_runs)


def check_reasoning_parser(parser_cls: type, text: str, *, tokenizer: Any = None,
                           seed: int = 0, random_runs: int = 3
                           ) -> tuple[str | None, str | None]:
    """Assert the streaming property for a reasoning parser; returns its ``parse()``."""
    expected = parser_cls(tokenizer).parse(text)
    as_message = ParsedMessage(reasoning=expected[0], content=expected[1])

    def make() -> OutputParser:
        return OutputParser(reasoning=parser_cls(tokenizer))
    parsed = _check(make, text, parser_cls.special_tokens, tokenizer, seed, random_runs)
    _same(as_message, parsed, "parse() and the same parser inside OutputParser", [text])
    return expected


def check_output_parser(reasoning_cls: type | None, tool_cls: type | None, text: str, *,
                        tokenizer: Any = None, tools: list[Any] | None = None,
                        seed: int = 0, random_runs: int = 3) -> ParsedMessage:
    """Assert the streaming property for reasoning and tool parsing together."""

    def make() -> OutputParser:
        return OutputParser(
            reasoning=reasoning_cls(tokenizer) if reasoning_cls else None,
            tools=tool_cls(tokenizer, tools) if tool_cls else None,
        )
    return _check(make, text, make().special_tokens, tokenizer, seed, random_runs)


def _check(make: Callable[[], Any], text: str, special_tokens: Iterable[str],
           tokenizer: Any, seed: int, random_runs: int) -> ParsedMessage:
    expected = make().parse(text)
    for index, call in enumerate(expected.tool_calls):
        _assert_json_object(call.arguments, f"tool call {index} ({call.name})", text)
    ids = [call.id for call in expected.tool_calls]
    assert len(set(ids)) == len(ids), f"tool call ids repeat: {ids}"
    cuts = chunkings(text, tokenizer=tokenizer, special_tokens=special_tokens,
                     seed=seed, random_runs=random_runs)
    ended = set()
    for name, pieces in cuts.items():
        parser = make()
        deltas, ended_at = [], []
        for piece in pieces:
            deltas.append(_as_message(parser.feed(piece)))
            ended_at.append(getattr(parser, "reasoning_ended", True))
        deltas.append(_as_message(parser.finish()))
        ended_at.append(getattr(parser, "reasoning_ended", True))
        _same(expected, merge_deltas(deltas), f"streamed {name} at a time", pieces)
        assert ended_at == sorted(ended_at), (
            f"streamed {name} at a time: reasoning_ended went back to False")
        ended.add(ended_at[-1])
    assert len(ended) == 1, "reasoning_ended at the end depends on the chunking"
    return expected


def _as_message(delta: DeltaMessage | ReasoningDelta) -> DeltaMessage:
    if isinstance(delta, ReasoningDelta):
        return DeltaMessage(content=delta.content, reasoning=delta.reasoning)
    return delta


def _same(expected: ParsedMessage, got: ParsedMessage, how: str, pieces: list[str]) -> None:
    def view(message: ParsedMessage) -> dict[str, Any]:
        return {
            "reasoning": message.reasoning or "",
            "content": message.content or "",
            "tool_calls": [(c.name, c.arguments) for c in message.tool_calls],
        }
    want, have = view(expected), view(got)
    if want != have:
        raise AssertionError(
            f"{how} differs from parse():\n  parse():  {want!r}\n  streamed: {have!r}\n"
            f"  chunks:   {_abbreviate(pieces)}")


def _assert_json_object(arguments: str, what: str, text: str) -> None:
    try:
        value = json.loads(arguments)
    except ValueError:
        value = None
    assert isinstance(value, dict), (
        f"{what}: arguments {arguments!r} are not a JSON object (text {text!r})")


def _abbreviate(pieces: list[str], limit: int = 40) -> str:
    shown = repr(pieces[:limit])
    return shown if len(pieces) <= limit else f"{shown[:-1]}, … {len(pieces) - limit} more]"
