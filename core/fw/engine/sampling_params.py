"""SamplingParams: how one request samples, with vLLM's names and semantics.

Every invalid value raises ``InvalidParameterError`` naming the parameter, so the server
can answer 400 with ``param`` set and the offline API gets a clear ``ValueError``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields
from typing import Any

from fw.errors import InvalidParameterError
from fw.structured.params import StructuredOutputsParams

#: temperatures below this are treated as greedy
GREEDY_EPSILON = 1e-5


class RequestOutputKind(enum.Enum):
    """What each RequestOutput of a streaming request carries."""

    CUMULATIVE = 0  # all text and tokens so far
    DELTA = 1  # only what is new since the previous output
    FINAL_ONLY = 2  # nothing until the request finishes


@dataclass
class SamplingParams:
    """How one request samples. ``None`` in one of the five sampling knobs, or in
    ``max_tokens``, means "unset": the engine's admission fills it from the model's
    generation config, else from fw's default (``max_tokens``: what the context leaves,
    capped by the model's ``max_new_tokens``)."""

    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float | None = 1.0
    temperature: float | None = 1.0
    top_p: float | None = 1.0
    top_k: int | None = 0  # 0 or -1: disabled
    min_p: float | None = 0.0
    seed: int | None = None
    stop: list[str] | str | None = None
    stop_token_ids: list[int] | None = None
    bad_words: list[str] | None = None
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    detokenize: bool = True
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: int | None = None
    logit_bias: dict[int, float] | None = None
    allowed_token_ids: list[int] | None = None
    structured_outputs: StructuredOutputsParams | None = None
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    #: arguments for logits processors (an HTTP request's ``vllm_xargs``)
    extra_args: dict[str, Any] | None = None
    #: logits processors this request names (import paths or registered names), allowed
    #: only as --logits-processor-pattern says
    logits_processors: list[str] | None = None
    #: token ids of bad_words, filled by the engine once the tokenizer is known
    _bad_words_token_ids: list[list[int]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        self.bad_words = list(self.bad_words or [])
        if self.top_k == -1:
            self.top_k = 0
        if self.logit_bias:
            try:
                self.logit_bias = {int(k): float(v) for k, v in self.logit_bias.items()}
            except (TypeError, ValueError):
                raise InvalidParameterError("logit_bias", "keys must be token ids and values numbers") from None
        self._validate()

    def _validate(self) -> None:
        def bad(param: str, message: str) -> None:
            raise InvalidParameterError(param, message)

        if not isinstance(self.n, int) or self.n < 1:
            bad("n", f"must be at least 1, got {self.n}")
        # NaN and infinities: a NaN (or infinite) temperature sampled garbage
        for name in ("presence_penalty", "frequency_penalty", "repetition_penalty", "temperature", "top_p", "min_p"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                bad(name, f"must be a finite number, got {value}")
        if self.logit_bias and not all(math.isfinite(v) for v in self.logit_bias.values()):
            bad("logit_bias", "values must be finite numbers")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if not -2.0 <= value <= 2.0:
                bad(name, f"must be in [-2, 2], got {value}")
        # Written so that NaN fails every check.
        if self.repetition_penalty is not None and not 0.0 < self.repetition_penalty <= 2.0:
            bad("repetition_penalty", f"must be in (0, 2], got {self.repetition_penalty}")
        if self.temperature is not None and not self.temperature >= 0.0:
            bad("temperature", f"must be non-negative, got {self.temperature}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            bad("top_p", f"must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 0:
            bad("top_k", f"must be -1 (disabled), 0 (disabled) or positive, got {self.top_k}")
        if self.min_p is not None and not 0.0 <= self.min_p <= 1.0:
            bad("min_p", f"must be in [0, 1], got {self.min_p}")
        if self.max_tokens is not None and self.max_tokens < 1:
            bad("max_tokens", f"must be at least 1, got {self.max_tokens}")
        if self.min_tokens < 0:
            bad("min_tokens", f"must be non-negative, got {self.min_tokens}")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            bad("min_tokens", f"must not exceed max_tokens ({self.max_tokens}), got {self.min_tokens}")
        if self.logprobs is not None and self.logprobs < -1:
            bad("logprobs", f"must be non-negative (or -1 for the whole vocabulary), got {self.logprobs}")
        if self.prompt_logprobs is not None and self.prompt_logprobs < -1:
            bad("prompt_logprobs", f"must be non-negative, got {self.prompt_logprobs}")
        if self.truncate_prompt_tokens is not None and self.truncate_prompt_tokens < 1:
            bad("truncate_prompt_tokens", f"must be at least 1, got {self.truncate_prompt_tokens}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            bad("stop", "must be non-empty strings")
        if self.seed is not None and (not isinstance(self.seed, int) or not -(2**63) <= self.seed < 2**63):
            bad("seed", f"must be an integer that fits in 64 bits, got {self.seed!r}")
        if self.extra_args is not None and not isinstance(self.extra_args, dict):
            bad("extra_args", "must be a dict of arguments for logits processors")
        if self.logits_processors is not None and (not isinstance(self.logits_processors, (list, tuple)) or
                                                   not all(isinstance(n, str) for n in self.logits_processors)):
            bad("logits_processors", "must be a list of names (import paths)")
        if self.allowed_token_ids is not None and not self.allowed_token_ids:
            bad("allowed_token_ids", "must not be empty")
        if self.structured_outputs is not None:
            self.structured_outputs.kind()

    def clone(self, **changes: Any) -> "SamplingParams":
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values.update(changes)
        return SamplingParams(**values)


@dataclass
class BeamSearchParams:
    """How one prompt's beam search runs (``LLM.beam_search``, and the server's
    ``use_beam_search``), with vLLM's names; ``fw.entrypoints.beam_search_state`` says
    what each one means. Beams are ranked by the model's own log-probabilities, so no
    sampling knob applies (``temperature`` is accepted only as 0, vLLM's default)."""

    beam_width: int
    #: None: what the context leaves (capped by the model's max_new_tokens)
    max_tokens: int | None
    ignore_eos: bool = False
    temperature: float = 0.0
    length_penalty: float = 1.0
    #: True, False or "never", as Hugging Face transformers (and vLLM's V0 engine) define them
    early_stopping: bool | str = False
    stop: list[str] | str | None = None
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    min_tokens: int = 0
    #: per generated token, the chosen token's logprob and this many top alternatives (None: none)
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        def bad(param: str, message: str) -> None:
            raise InvalidParameterError(param, message)

        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        if not isinstance(self.beam_width, int) or self.beam_width < 1:
            bad("beam_width", f"must be at least 1, got {self.beam_width}")
        if self.max_tokens is not None and self.max_tokens < 1:
            bad("max_tokens", f"must be at least 1, got {self.max_tokens}")
        if not self.temperature == 0.0:  # NaN fails too
            bad("temperature", "beam search ranks beams by the model's own log-probabilities, so it takes no "
                               f"temperature (0 or unset); got {self.temperature}")
        if not math.isfinite(self.length_penalty):
            bad("length_penalty", f"must be a finite number, got {self.length_penalty}")
        if not (isinstance(self.early_stopping, bool) or self.early_stopping == "never"):
            bad("early_stopping", f'must be true, false or "never", got {self.early_stopping!r}')
        if self.min_tokens < 0:
            bad("min_tokens", f"must be non-negative, got {self.min_tokens}")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            bad("min_tokens", f"must not exceed max_tokens ({self.max_tokens}), got {self.min_tokens}")
        if self.logprobs is not None and self.logprobs < 0:
            bad("logprobs", f"must be non-negative, got {self.logprobs}")
        if self.prompt_logprobs is not None and self.prompt_logprobs < -1:
            bad("prompt_logprobs", f"must be non-negative, got {self.prompt_logprobs}")
        if any(not isinstance(stop, str) or not stop for stop in self.stop):
            bad("stop", "must be non-empty strings")
