"""The contract of a logits processor (vLLM v1's batch-level shape, without its slot
bookkeeping).

A processor is one object per engine. For each request it is asked once, when the request
first samples, whether the request uses it (``new_request``: a state, or None); each step
it is handed the logits of the whole step and the rows of the requests that use it
(``apply``), so requests that do not use it cost nothing and a step pays for one batched
call, not one per request. Per-request arguments arrive in ``SamplingParams.extra_args``
(``vllm_xargs`` in an HTTP request) and are checked by ``validate`` when the request is
admitted, so a bad argument is a 400 before the request runs, never a failure in a step.

Rules that keep fw's guarantees:

* ``apply`` changes only the rows it is given, each from that row's own state and output
  tokens: a row's result never depends on the other rows of its step, so greedy output
  stays batch-invariant, and a speculative step (where a request has one row per
  proposed token, each with the proposals before it appended to its output) gives what
  decoding one token at a time gives.
* ``apply`` works in place on the logits' device (CPU or CUDA) and keeps their dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from fw.engine.sampling_params import SamplingParams


@dataclass(frozen=True)
class LogitsProcessorContext:
    """What a processor may know about the engine it runs in."""

    #: the logits' width (the model's vocabulary)
    vocab_size: int
    #: where the logits live
    device: Any
    #: the model's end-of-sequence ids
    eos_token_ids: tuple[int, ...] = ()


class LogitsProcessor:
    """Base class of logits processors; subclass it and override what you need.

    Register a subclass with the ``fw_register_logits_processors`` hook (then
    ``--logits-processors NAME`` enables it), name it by import path
    (``--logits-processors package.module:Class``), or declare it in the
    ``fw.logits_processors`` entry-point group (enabled whenever it is installed, as
    vLLM's ``vllm.logits_processors`` group is).
    """

    #: the ``extra_args`` keys this processor reads; a request key that no processor able
    #: to apply to the request reads is refused (never accepted and ignored)
    xargs: tuple[str, ...] = ()

    def __init__(self, context: LogitsProcessorContext) -> None:
        self.context = context

    def validate(self, params: SamplingParams) -> None:
        """Refuse a request's arguments (``params.extra_args``) by raising
        ``fw.errors.InvalidParameterError("vllm_xargs", reason)``. Called once per request at
        admission, for every enabled processor; a request that does not use this processor
        must pass."""

    def new_request(self, params: SamplingParams, prompt_ids: list[int]) -> Any | None:
        """This processor's state for a request, or None when the request does not use it
        (the default: a processor that every request uses returns a state for each)."""
        return None

    def apply(self, logits: torch.Tensor, rows: list[int], states: list[Any], output_ids: list[list[int]]) -> None:
        """Change ``logits`` [step rows, vocab] in place, at ``rows`` only; ``states[i]`` and
        ``output_ids[i]`` (the tokens generated so far, read only) belong to ``rows[i]``."""
        raise NotImplementedError
