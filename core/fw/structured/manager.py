"""Compiles constraints once (cached, thread-safe, with the engine's JSON options) with
the backend ``fw.structured.selection`` picks, and applies every constrained sequence's
bitmask to a step's logits (rows grouped by the backend that compiled them)."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import torch

from fw import plugins
from fw.errors import InvalidParameterError
from fw.registry import UnknownNameError
from fw.structured.backend import GrammarMatcher, GrammarSpec, StructuredOutputBackend
from fw.structured.params import StructuredOutputsParams
from fw.structured.selection import backend_order, canonical_backend

if TYPE_CHECKING:
    from fw.config.structured import StructuredOutputsConfig
    from fw.engine.request import Request

logger = logging.getLogger("fw.engine")

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


class BoundMatcher:
    """A backend's matcher and the backend it belongs to (a step may mix backends)."""

    def __init__(self, matcher: GrammarMatcher, backend: StructuredOutputBackend):
        self.matcher, self.backend = matcher, backend

    def accept_token(self, token_id: int) -> bool:
        return self.matcher.accept_token(token_id)

    def is_terminated(self) -> bool:
        return self.matcher.is_terminated()


class StructuredOutputManager:
    def __init__(self, config: "StructuredOutputsConfig", tokenizer: Any, vocab_size: int):
        """Raises ValueError for a --guided-decoding-backend no plugin registered."""
        self.config = config
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.default = canonical_backend(config.guided_decoding_backend)
        self._backends: dict[str, StructuredOutputBackend] = {}
        self._cache: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def backend(self, name: str) -> StructuredOutputBackend:
        """The backend registered as ``name``, built on first use."""
        with self._lock:
            if name not in self._backends:
                cls = plugins.load("structured_output_backend", name)
                self._backends[name] = cls(self.tokenizer, self.vocab_size)
            return self._backends[name]

    def _order(self, params: StructuredOutputsParams) -> list[str]:
        try:
            return backend_order(params.backend or self.default,
                                 fallback=not self.config.guided_decoding_disable_fallback)
        except UnknownNameError as exc:
            raise InvalidParameterError("guided_decoding_backend", str(exc)) from None

    def compile(self, params: StructuredOutputsParams) -> tuple[str, Any]:
        """The backend name and compiled grammar for ``params`` (cached); invalid
        constraints raise InvalidParameterError naming the request parameter they came
        from (with "auto", the first backend's reason when none could compile them)."""
        spec = spec_for(params, self.config)
        order = self._order(params)
        key = json.dumps([order, _cache_key(spec)])
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        reasons = []
        for name in order:
            try:
                compiled = (name, self.backend(name).compile(spec))
                break
            except ValueError as exc:
                reasons.append(str(exc))
        else:
            raise InvalidParameterError(params.param_name(), reasons[0])
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def new_matcher(self, params: StructuredOutputsParams) -> BoundMatcher:
        name, compiled = self.compile(params)
        backend = self.backend(name)
        return BoundMatcher(backend.new_matcher(compiled), backend)

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

    def first_token_mask(self, params: StructuredOutputsParams) -> torch.Tensor:
        """A bool [vocab] tensor: the tokens the constraint allows as its first."""
        bound = self.new_matcher(params)
        backend = bound.backend
        bitmask = backend.allocate_bitmask(1)
        backend.fill_bitmasks([bound.matcher], bitmask, [0])
        logits = torch.zeros(1, self.vocab_size)
        backend.apply_bitmask(logits, bitmask, [0])
        return torch.isfinite(logits[0])

    def apply(self, logits: torch.Tensor, requests: list["Request"]) -> None:
        """Mask ``logits`` rows of constrained sequences whose grammar is active."""
        groups: dict[int, tuple[StructuredOutputBackend, list[Any], list[int]]] = {}
        for row, request in enumerate(requests):
            bound = request.grammar
            if bound is not None and request.grammar_active:
                group = groups.setdefault(id(bound.backend), (bound.backend, [], []))
                group[1].append(bound.matcher)
                group[2].append(row)
        for backend, matchers, rows in groups.values():
            bitmask = backend.allocate_bitmask(len(requests))
            backend.fill_bitmasks(matchers, bitmask, rows)
            backend.apply_bitmask(logits, bitmask, rows)
