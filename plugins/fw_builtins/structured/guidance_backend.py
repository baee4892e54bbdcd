"""The second built-in structured-output backend, on llguidance (``guidance``).

llguidance compiles grammars lazily (an Earley parser over a lexer), so a large or
unusual JSON schema costs little up front, and it reads Lark grammars besides GBNF.
fw keeps the outputs of both backends alike: JSON objects get only the properties their
schema lists unless the schema sets ``additionalProperties`` (xgrammar's strict mode),
optional whitespace runs are bounded as with xgrammar, so a small model cannot loop on
newlines, and JSON without optional whitespace has xgrammar's layout (``", "``, ``": "``).
"""

from __future__ import annotations

import json
from typing import Any

import llguidance
import llguidance.hf
import torch

from fw.structured.backend import GrammarSpec, StructuredOutputBackend

#: the longest run of optional JSON whitespace (as fw's xgrammar backend allows)
MAX_WHITESPACE_RUN = 48
#: keywords whose values are schemas, or maps / lists of schemas
_SUBSCHEMA = ("items", "additionalItems", "additionalProperties", "contains", "not", "if", "then", "else", "propertyNames")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def strict_objects(schema: Any) -> Any:
    """A copy of ``schema`` where every object schema without ``additionalProperties``
    forbids properties it does not list."""
    if isinstance(schema, list):
        return [strict_objects(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict_objects(value) if key in _SUBSCHEMA or key in _SUBSCHEMA_LISTS else value
           for key, value in schema.items()}
    for key in _SUBSCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            out[key] = {name: strict_objects(sub) for name, sub in schema[key].items()}
    is_object = schema.get("type") == "object" or "properties" in schema
    if is_object and "additionalProperties" not in schema and "unevaluatedProperties" not in schema:
        out["additionalProperties"] = False
    return out


class _Matcher:
    def __init__(self, tokenizer: llguidance.LLTokenizer, grammar: str):
        self.matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)

    def accept_token(self, token_id: int) -> bool:
        return bool(self.matcher.consume_token(token_id)) and not self.matcher.is_error()

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        words = bitmask[row]
        self.matcher.unsafe_compute_mask_ptr(words.data_ptr(), words.numel() * words.element_size())

    def is_terminated(self) -> bool:
        return bool(self.matcher.is_stopped())


class GuidanceBackend(StructuredOutputBackend):
    name = "guidance"

    def __init__(self, tokenizer: Any, vocab_size: int):
        super().__init__(tokenizer, vocab_size)
        self.ll_tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)

    def compile(self, spec: GrammarSpec) -> str:
        grammar = self._grammar(spec)
        error = llguidance.LLMatcher.validate_grammar(grammar, self.ll_tokenizer)
        if error:
            raise ValueError(error.strip().splitlines()[0][:500])
        return grammar

    def _grammar(self, spec: GrammarSpec) -> str:
        if spec.kind == "regex":
            return llguidance.LLMatcher.grammar_from_regex(spec.value)
        if spec.kind == "grammar":
            try:
                return llguidance.grammar_from("grammar", spec.value)
            except ValueError as exc:
                raise ValueError(f"not a valid EBNF (GBNF) or Lark grammar: {exc}") from None
        if spec.kind == "choice":
            if not spec.value or not all(isinstance(c, str) for c in spec.value):
                raise ValueError("choices must be a non-empty list of strings")
            return llguidance.LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(c) for c in spec.value))
        schema = {"type": "object"} if spec.kind == "json_object" else spec.value
        if not isinstance(schema, (dict, bool)):
            raise ValueError("a JSON schema must be an object")
        if spec.kind == "json":
            schema = strict_objects(schema)
        if spec.whitespace_pattern is not None:
            options: dict[str, Any] = {"whitespace_pattern": spec.whitespace_pattern}
        elif spec.any_whitespace:
            options = {"whitespace_pattern": f"[\\x20\\x0A\\x0D\\x09]{{0,{MAX_WHITESPACE_RUN}}}"}
        else:  # one layout, xgrammar's: json.dumps' separators
            options = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
        return llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=options)

    def new_matcher(self, compiled: str) -> _Matcher:
        return _Matcher(self.ll_tokenizer, compiled)
