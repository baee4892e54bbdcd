"""Compiles constraints once (cached, thread-safe, with the engine's JSON options) and
applies every constrained sequence's bitmask to a step's logits."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import torch

from fw import plugins
from fw.structured.params import StructuredOutputsParams
from fw.errors import InvalidParameterError
from fw.structured.backend import GrammarSpec, StructuredOutputBackend

if TYPE_CHECKING:
    from fw.config.structured import StructuredOutputsConfig
    from fw.engine.request import Request

logger = logging.getLogger("fw.engine")

DEFAULT_BACKEND = "xgrammar"
CACHE_SIZE = 256


def spec_for(params: StructuredOutputsParams, config: "StructuredOutputsConfig") -> GrammarSpec:
    kind = params.kind()
    value = {"json": params.json, "regex": params.regex, "choice": params.choice,
             "grammar": params.grammar, "json_object": True}[kind]
    if kind == "json" and isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidParameterError(params.param_name(), f"the JSON schema is not valid JSON: {exc}") from None
    return GrammarSpec(
        kind=kind, value=value,
        any_whitespace=not (params.disable_any_whitespace or config.guided_decoding_disable_any_whitespace),
        whitespace_pattern=params.whitespace_pattern,
    )


def _cache_key(spec: GrammarSpec) -> str:
    return json.dumps([spec.kind, spec.value, spec.any_whitespace, spec.whitespace_pattern],
                      sort_keys=True, default=str)


class StructuredOutputManager:
    def __init__(self, config: "StructuredOutputsConfig", tokenizer: Any, vocab_size: int):
        self.config = config
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self._backend: StructuredOutputBackend | None = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def backend(self) -> StructuredOutputBackend:
        with self._lock:
            if self._backend is None:
                name = self.config.guided_decoding_backend
                cls = plugins.load("structured_output_backend", DEFAULT_BACKEND if name == "auto" else name)
                self._backend = cls(self.tokenizer, self.vocab_size)
            return self._backend

    def compile(self, params: StructuredOutputsParams) -> Any:
        """The compiled grammar for ``params`` (cached); invalid constraints raise
        InvalidParameterError naming the request parameter they came from."""
        spec = spec_for(params, self.config)
        key = _cache_key(spec)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            compiled = self.backend.compile(spec)
        except ValueError as exc:
            raise InvalidParameterError(params.param_name(), str(exc)) from None
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def new_matcher(self, params: StructuredOutputsParams):
        return self.backend.new_matcher(self.compile(params))

    def advance(self, request: "Request", token: int) -> bool:
        """Feed a constrained sequence its new token; True when its grammar is then complete.
        Before the reasoning ends (``reasoning_end_ids``) the grammar waits for it instead."""
        if not request.grammar_active:
            end = request.reasoning_end_ids
            if tuple((request.output_token_ids + [token])[-len(end):]) == end:
                request.grammar_active = True
            return False
        if not request.grammar.accept_token(token):
            logger.warning("request %s: token %d rejected by its grammar", request.request_id, token)
        return request.grammar.is_terminated()

    def apply(self, logits: torch.Tensor, requests: list["Request"]) -> None:
        """Mask ``logits`` rows of constrained sequences whose grammar is active."""
        rows = [i for i, r in enumerate(requests) if r.grammar is not None and r.grammar_active]
        if not rows:
            return
        backend = self.backend
        bitmask = backend.allocate_bitmask(len(requests))
        backend.fill_bitmasks([requests[row].grammar for row in rows], bitmask, rows)
        backend.apply_bitmask(logits, bitmask, rows)
