"""A request's structured-output constraint, as the engine receives it (every API
spelling, ``guided_*``, ``response_format``, ``structured_outputs``, becomes one of these)."""

from __future__ import annotations

from dataclasses import dataclass

from fw.errors import InvalidParameterError


@dataclass
class StructuredOutputsParams:
    """One constraint on the output (set exactly one of the constraint fields)."""

    json: str | dict | None = None  # a JSON schema
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None  # EBNF as the backend reads it
    json_object: bool | None = None  # any JSON object
    whitespace_pattern: str | None = None
    disable_any_whitespace: bool = False
    #: accepted for vLLM compatibility; objects already get only the properties their
    #: schema lists unless the schema sets additionalProperties
    disable_additional_properties: bool = False
    #: the request parameter this came from ("response_format", "guided_json", ...), for errors
    source: str | None = None
    #: the backend to compile it with (a request's guided_decoding_backend); None: the engine's
    backend: str | None = None

    def param_name(self) -> str:
        return self.source or "structured_outputs"

    def kind(self) -> str:
        set_ = [name for name in ("json", "regex", "choice", "grammar", "json_object")
                if getattr(self, name) not in (None, False)]
        if len(set_) != 1:
            raise InvalidParameterError(
                self.param_name(),
                f"exactly one of json, regex, choice, grammar, json_object must be set (got {set_ or 'none'})",
            )
        return set_[0]
