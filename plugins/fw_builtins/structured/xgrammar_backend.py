"""The built-in structured-output backend, on xgrammar.

Choices become an EBNF alternation of JSON-escaped literals; a custom JSON whitespace
pattern replaces the whitespace xgrammar's JSON grammar allows between tokens (compiled
from the pattern as a regex rule).
"""

from __future__ import annotations

import json
import re
from typing import Any

import torch
import xgrammar as xgr

from fw.structured.backend import GrammarSpec, StructuredOutputBackend

#: the whitespace xgrammar's JSON-schema grammar allows wherever JSON allows it
_JSON_WHITESPACE = "[ \\n\\r\\t]*"
#: longest whitespace run allowed in JSON: enough for deep indentation, but a small model
#: can no longer loop on newlines until it runs out of tokens
MAX_WHITESPACE_RUN = 48


class _Matcher:
    def __init__(self, compiled: xgr.CompiledGrammar):
        self.matcher = xgr.GrammarMatcher(compiled)

    def accept_token(self, token_id: int) -> bool:
        return bool(self.matcher.accept_token(token_id))

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        self.matcher.fill_next_token_bitmask(bitmask, row)

    def is_terminated(self) -> bool:
        return bool(self.matcher.is_terminated())


class XGrammarBackend(StructuredOutputBackend):
    name = "xgrammar"

    def __init__(self, tokenizer: Any, vocab_size: int):
        super().__init__(tokenizer, vocab_size)
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self.compiler = xgr.GrammarCompiler(info, max_threads=2, cache_enabled=False)

    def compile(self, spec: GrammarSpec) -> Any:
        try:
            return self._compile(spec)
        except RuntimeError as exc:
            raise ValueError(_reason(exc)) from None

    def _compile(self, spec: GrammarSpec) -> Any:
        if spec.kind == "regex":
            return self.compiler.compile_regex(spec.value)
        if spec.kind == "grammar":
            return self.compiler.compile_grammar(spec.value)
        if spec.kind == "choice":
            if not spec.value or not all(isinstance(c, str) for c in spec.value):
                raise ValueError("choices must be a non-empty list of strings")
            return self.compiler.compile_grammar("root ::= " + " | ".join(json.dumps(c) for c in spec.value))
        if spec.kind == "json_object":
            schema: Any = {"type": "object"}
        else:
            schema = spec.value
        if not isinstance(schema, (dict, bool)):
            raise ValueError("a JSON schema must be an object")
        # Strict: an object gets only the properties its schema lists, unless the schema
        # itself sets additionalProperties (vLLM's behaviour with xgrammar).
        grammar = xgr.Grammar.from_json_schema(
            json.dumps(schema), any_whitespace=spec.any_whitespace, strict_mode=True,
            max_whitespace_cnt=MAX_WHITESPACE_RUN if spec.whitespace_pattern is None else None)
        if spec.whitespace_pattern is not None:
            grammar = _with_whitespace(grammar, spec.whitespace_pattern)
        return self.compiler.compile_grammar(grammar)

    def new_matcher(self, compiled: Any) -> _Matcher:
        return _Matcher(compiled)

    def allocate_bitmask(self, rows: int) -> torch.Tensor:
        return xgr.allocate_token_bitmask(rows, self.vocab_size)


def _with_whitespace(grammar: xgr.Grammar, pattern: str) -> str:
    """The JSON grammar with every optional-whitespace run replaced by ``pattern``."""
    ws = str(xgr.Grammar.from_regex(pattern))
    for name in re.findall(r"^(\w+) ::=", ws, flags=re.M):
        ws = re.sub(rf"\b{name}\b", "fw_ws" if name == "root" else f"fw_ws_{name}", ws)
    return str(grammar).replace(_JSON_WHITESPACE, "fw_ws") + "\n" + ws


def _reason(exc: RuntimeError) -> str:
    """xgrammar's message without its C++ source location."""
    text = str(exc).strip()
    text = re.sub(r"^\[[^\]]*\]\s*\S+:\d+:\s*", "", text)
    return text.replace("Check failed: (error.empty()) is false: ", "").splitlines()[0][:500]
