"""Per-choice output parsing for chat: reasoning first, then tool calls (by the
--tool-call-parser for "auto", by the forced parsers for "required" and named calls).

``ChatParsing`` is built once per server: it loads --tool-parser-plugin, resolves the
parser names (an unknown name stops start-up with the list of known ones) and knows
which marker tokens the detokenizer must keep.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fw import plugins
from fw.parsing.messages import DeltaMessage
from fw.parsing.pipeline import OutputParser
from fw.server.tools import NamedCallParser, RequiredCallsParser, ToolPlan


def load_parser_plugin(path: str) -> None:
    """Import a plugin file and register it, so its parsers can be named."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--tool-parser-plugin: no such file {path}")
    spec = importlib.util.spec_from_file_location(f"fw_tool_parser_plugin_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - reported as a start-up error naming the file
        raise ValueError(f"--tool-parser-plugin {path} failed to load: {type(exc).__name__}: {exc}") from exc
    plugins.register_plugin(module, f"file:{file.name}")


class ChatParsing:
    def __init__(self, tokenizer: Any, *, tool_call_parser: str | None, reasoning_parser: str | None,
                 tool_parser_plugin: str | None):
        if tool_parser_plugin:
            load_parser_plugin(tool_parser_plugin)
        self.tokenizer = tokenizer
        self.tool_cls = self._resolve("tool_parser", tool_call_parser, "--tool-call-parser")
        self.reasoning_cls = self._resolve("reasoning_parser", reasoning_parser, "--reasoning-parser")
        self._vocab = tokenizer.get_vocab() if tokenizer is not None else {}

    @staticmethod
    def _resolve(kind: str, name: str | None, flag: str):
        if not name:
            return None
        try:
            return plugins.load(kind, name)
        except ValueError as exc:
            raise ValueError(f"{flag}: {exc}") from None

    def for_choice(self, plan: ToolPlan) -> OutputParser | None:
        """A fresh parser for one choice, or None when the text is passed through."""
        reasoning = self.reasoning_cls(self.tokenizer) if self.reasoning_cls else None
        tools = None
        if plan.mode == "auto":
            tools = self.tool_cls(self.tokenizer, plan.template_tools)
        elif plan.mode == "named":
            tools = NamedCallParser(plan.name)
        elif plan.mode == "required":
            tools = RequiredCallsParser()
        if reasoning is None and tools is None:
            return None
        return OutputParser(reasoning, tools)

    def keep_special_ids(self, parser: OutputParser | None) -> frozenset[int]:
        """Ids of the parser's markers that are single tokens of the vocabulary."""
        if parser is None:
            return frozenset()
        return frozenset(self._vocab[m] for m in parser.special_tokens if m in self._vocab)

    def reasoning_end_ids(self, prompt_text: str) -> tuple[int, ...] | None:
        """Token ids after which a constraint starts, unless the prompt already ended the
        reasoning: it ends with the end marker (a template that closes an empty think block,
        or a continued assistant message whose reasoning is over). A think block earlier in
        the prompt, a past turn's reasoning, ends nothing: the model reasons again."""
        marker = self.reasoning_cls.end_marker if self.reasoning_cls is not None else None
        if not marker or prompt_text.rstrip().endswith(marker):
            return None
        return tuple(self.tokenizer.encode(marker, add_special_tokens=False))


def feed_parser(parser: OutputParser, text: str, final: bool) -> DeltaMessage:
    """The next piece of a streamed choice, parsed; the last piece (``final``) also
    flushes what the parsers held back."""
    parsed = parser.feed(text)
    if final:
        last = parser.finish()
        parsed.content = ((parsed.content or "") + (last.content or "")) or None
        parsed.reasoning = ((parsed.reasoning or "") + (last.reasoning or "")) or None
        parsed.tool_calls += last.tool_calls
    return parsed
