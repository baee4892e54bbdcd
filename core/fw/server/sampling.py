"""A request's fields as the engine's SamplingParams.

This is translation only: the engine's admission step checks every rule and fills what
the request left unset (passed as None) from the model's generation config, as vLLM
does. Structured-output fields in all their spellings (``guided_*``,
``response_format``, ``structured_outputs``) become one ``StructuredOutputsParams``.

``use_beam_search`` requests become ``BeamSearchParams`` instead (``beam_search_params``),
with vLLM's meaning: ``n`` is the beam width and the ``n`` best beams are the choices.
Beams are ranked by the model's own log-probabilities (what the engine's logprobs are),
so what would change the sampling distribution cannot act on them: a temperature above
0, top_p below 1, top_k, min_p, the penalties, logit_bias, allowed_token_ids, bad_words
and structured outputs (response_format, guided_*, a tool_choice that forces a call) are
refused with a 400 naming the parameter. vLLM's V1 server accepts and ignores them; fw
refuses rather than ignore. ``seed`` is accepted: beam search draws nothing, so any seed
gives the same answer. ``length_penalty`` and ``early_stopping`` only mean something to
beam search and are refused without it.
"""

from __future__ import annotations

from typing import Any

from fw.engine.sampling_params import BeamSearchParams, RequestOutputKind, SamplingParams
from fw.errors import InvalidParameterError, NotSupportedError
from fw.registry import UnknownNameError
from fw.server.protocol.common import SamplingRequest
from fw.structured.params import StructuredOutputsParams
from fw.structured.selection import canonical_backend


def reject_unsupported(request: SamplingRequest) -> None:
    if not request.use_beam_search:
        if request.length_penalty != 1.0:
            raise InvalidParameterError("length_penalty", "only applies to beam search (use_beam_search: true)")
        if request.early_stopping is not False:
            raise InvalidParameterError("early_stopping", "only applies to beam search (use_beam_search: true)")
    if request.best_of is not None and request.best_of != request.n:
        raise NotSupportedError(
            f"best_of ({request.best_of}) different from n ({request.n}) is not supported yet",
            param="best_of",
        )


def structured_outputs(request: SamplingRequest) -> StructuredOutputsParams | None:
    """Every spelling of a structured-output request, or None. More than one constraint
    is an error, which SamplingParams reports (StructuredOutputsParams.kind()), naming the
    last one given; beam search refuses any."""
    spec: dict[str, Any] = {}
    constraints = {"json", "regex", "choice", "grammar", "json_object"}
    source = None
    if request.structured_outputs is not None:
        so = request.structured_outputs
        spec = {k: v for k, v in {
            "json": so.json_, "regex": so.regex, "choice": so.choice, "grammar": so.grammar,
            "json_object": so.json_object, "whitespace_pattern": so.whitespace_pattern,
        }.items() if v is not None}
        spec["disable_any_whitespace"] = so.disable_any_whitespace
        spec["disable_additional_properties"] = so.disable_additional_properties
        source = "structured_outputs"
    guided = {"json": request.guided_json, "regex": request.guided_regex,
              "choice": request.guided_choice, "grammar": request.guided_grammar,
              "whitespace_pattern": request.guided_whitespace_pattern}
    for key, value in guided.items():
        if value is not None:
            if key in spec and key != "whitespace_pattern":
                raise InvalidParameterError(f"guided_{key}", "given twice (also in structured_outputs)")
            spec[key] = value
            if key in constraints:
                source = f"guided_{key}"
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        spec["json_object"] = True
        source = "response_format"
    elif fmt is not None and fmt.type == "json_schema":
        if fmt.json_schema is None or fmt.json_schema.json_schema is None:
            raise InvalidParameterError("response_format", "json_schema.schema is required for type json_schema")
        spec["json"] = fmt.json_schema.json_schema
        source = "response_format"
    backend = _backend(request.guided_decoding_backend)
    if not constraints & spec.keys():
        if "whitespace_pattern" in spec:
            raise InvalidParameterError("guided_whitespace_pattern", "only applies to a JSON constraint")
        return None
    return StructuredOutputsParams(**spec, source=source, backend=backend)


def _backend(name: str | None) -> str | None:
    """A request's guided_decoding_backend, checked now (a typo is a 400 even when the
    request has no constraint for it to compile)."""
    if name is None:
        return None
    try:
        return canonical_backend(name)
    except UnknownNameError as exc:
        raise InvalidParameterError("guided_decoding_backend", str(exc)) from None


def _logit_bias(bias: dict[str, float] | None) -> dict[int, float] | None:
    """OpenAI's string keys as token ids, values clamped to its [-100, 100]."""
    if not bias:
        return None
    out = {}
    for key, value in bias.items():
        try:
            token = int(key)
        except ValueError:
            raise InvalidParameterError("logit_bias", f"keys must be token ids, got {key!r}") from None
        out[token] = max(-100.0, min(100.0, float(value)))
    return out


#: sampling fields beam search cannot honour, and the values that leave them off
_NOT_WITH_BEAMS = {
    "temperature": (None, 0.0), "top_p": (None, 1.0), "top_k": (None, 0, -1), "min_p": (None, 0.0),
    "presence_penalty": (None, 0.0), "frequency_penalty": (None, 0.0), "repetition_penalty": (None, 1.0),
    "logit_bias": (None, {}), "allowed_token_ids": (None,), "bad_words": (None, []),
}


def beam_search_params(request: SamplingRequest, *, max_tokens: int | None, logprobs: int | None,
                       prompt_logprobs: int | None) -> BeamSearchParams:
    """A ``use_beam_search`` request as ``BeamSearchParams`` (``n`` is the width), or a 400
    naming the first field beam search cannot honour (see the module docstring)."""
    for name, off in _NOT_WITH_BEAMS.items():
        value = getattr(request, name)
        if value not in off:
            raise InvalidParameterError(
                name, f"cannot be used with use_beam_search: beams are ranked by the model's own "
                      f"log-probabilities (got {value!r})")
    constraint = structured_outputs(request)
    if constraint is not None:
        raise InvalidParameterError(constraint.param_name(), "structured outputs cannot be used with use_beam_search")
    return BeamSearchParams(
        beam_width=request.n, max_tokens=max_tokens, ignore_eos=request.ignore_eos,
        length_penalty=request.length_penalty, early_stopping=request.early_stopping, stop=request.stop,
        stop_token_ids=request.stop_token_ids, include_stop_str_in_output=request.include_stop_str_in_output,
        min_tokens=request.min_tokens, logprobs=logprobs, prompt_logprobs=prompt_logprobs,
        skip_special_tokens=request.skip_special_tokens,
        spaces_between_special_tokens=request.spaces_between_special_tokens,
        truncate_prompt_tokens=request.truncate_prompt_tokens,
    )


def sampling_params(request: SamplingRequest, *, max_tokens: int | None, logprobs: int | None,
                    prompt_logprobs: int | None) -> SamplingParams:
    return SamplingParams(
        n=request.n,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        repetition_penalty=request.repetition_penalty,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        min_p=request.min_p,
        seed=request.seed,
        stop=request.stop,
        stop_token_ids=request.stop_token_ids,
        bad_words=request.bad_words,
        include_stop_str_in_output=request.include_stop_str_in_output,
        ignore_eos=request.ignore_eos,
        max_tokens=max_tokens,
        min_tokens=request.min_tokens,
        logprobs=logprobs,
        prompt_logprobs=prompt_logprobs,
        skip_special_tokens=request.skip_special_tokens,
        spaces_between_special_tokens=request.spaces_between_special_tokens,
        truncate_prompt_tokens=request.truncate_prompt_tokens,
        logit_bias=_logit_bias(request.logit_bias),
        allowed_token_ids=request.allowed_token_ids,
        structured_outputs=structured_outputs(request),
        extra_args=request.vllm_xargs,
        logits_processors=request.logits_processors,
        output_kind=RequestOutputKind.DELTA,
    )
