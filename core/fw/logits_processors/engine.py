"""The logits processors of one engine: their instances, the admission check of a
request's arguments, and the per-request states the sampling batch keeps.

The processors ``--logits-processors`` (and the ``fw.logits_processors`` entry points)
enable are built when the engine starts; one a request names in ``logits_processors`` is
built the first time a request names it and kept. Every enabled processor checks every
request's arguments (``validate``) and is asked whether the request uses it
(``new_request``); a processor a request names is asked for that request only.
"""

from __future__ import annotations

import re
from typing import Any

from fw.errors import InvalidParameterError
from fw.logits_processors.interface import LogitsProcessor, LogitsProcessorContext
from fw.logits_processors.loading import check_request_names, resolve, server_classes


class EngineLogitsProcessors:
    def __init__(self, context: LogitsProcessorContext, enabled: list[LogitsProcessor],
                 pattern: str | None = None):
        self.context = context
        self.enabled = enabled
        self.pattern = pattern
        #: processors requests named, by the name they used
        self._named: dict[str, LogitsProcessor] = {}
        #: every processor built, in the order they apply to a row that uses several (the
        #: same order whatever else shares the step, which keeps a row batch-invariant)
        self._order: dict[int, int] = {id(p): i for i, p in enumerate(enabled)}

    @classmethod
    def build(cls, context: LogitsProcessorContext, names: list[str] | None,
              pattern: str | None) -> EngineLogitsProcessors | None:
        """None when nothing can use a processor (no enabled one, no pattern): the engine
        then pays nothing at all."""
        enabled = [klass(context) for klass in check_options(names, pattern)]
        if not enabled and pattern is None:
            return None
        return cls(context, enabled, pattern)

    def _named_processor(self, name: str) -> LogitsProcessor:
        if name not in self._named:
            try:
                klass = resolve(name)
            except ValueError as exc:
                raise InvalidParameterError("logits_processors", str(exc)) from None
            # one instance per class, whichever name or alias reached it
            built = next((p for p in (*self.enabled, *self._named.values()) if type(p) is klass), None)
            if built is None:
                built = klass(self.context)
                self._order[id(built)] = len(self._order)
            self._named[name] = built
        return self._named[name]

    def rank(self, processor: LogitsProcessor) -> int:
        """Where ``processor`` applies among several on one row."""
        return self._order[id(processor)]

    def for_request(self, params: Any) -> list[LogitsProcessor]:
        """The processors that may apply to a request: the enabled ones and those it names."""
        named = [self._named_processor(name) for name in params.logits_processors or ()]
        return sorted({id(p): p for p in (*self.enabled, *named)}.values(), key=self.rank)

    def validate(self, params: Any) -> None:
        """Admission: the names a request gives are allowed and load, its arguments pass
        every processor that may apply to it (InvalidParameterError naming the field)."""
        check_request_names(params.logits_processors or [], self.pattern)
        processors = self.for_request(params)
        check_xargs_read(params, {key for p in processors for key in p.xargs})
        for processor in processors:
            processor.validate(params)

    def states(self, params: Any, prompt_ids: list[int]) -> list[tuple[LogitsProcessor, Any]]:
        """(processor, state) for each processor the request uses."""
        out = []
        for processor in self.for_request(params):
            state = processor.new_request(params, prompt_ids)
            if state is not None:
                out.append((processor, state))
        return out


def check_options(names: list[str] | None, pattern: str | None) -> list[type[LogitsProcessor]]:
    """The enabled classes; ValueError naming the flag for a name that loads nothing or a
    pattern that is no regular expression (``fw serve`` calls this before the engine loads)."""
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"--logits-processor-pattern: not a regular expression: {exc}") from None
    return [klass for _, klass in server_classes(names)]


def check_xargs_read(params: Any, read: set[str]) -> None:
    """Every ``extra_args`` key must be one a processor that may apply reads."""
    unread = sorted(set(params.extra_args or {}) - read)
    if not unread:
        return
    keys = ", ".join(map(repr, unread))
    if not read:
        raise InvalidParameterError("vllm_xargs", f"{keys}: no logits processor is enabled to read them "
                                                  "(the server's --logits-processors)")
    raise InvalidParameterError("vllm_xargs", f"no logits processor reads {keys}; the keys read are "
                                              f"{', '.join(sorted(read))}")


def check_without_processors(params: Any) -> None:
    """Admission in an engine with no processors and no pattern: a request's own
    ``logits_processors`` are refused (vLLM's rule), and so are arguments for them."""
    check_request_names(params.logits_processors or [], None)
    check_xargs_read(params, set())
