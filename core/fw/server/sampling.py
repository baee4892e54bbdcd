"""A request's fields as the engine's SamplingParams.

Unset sampling knobs take the model's own defaults (its generation_config) before the
API's, as vLLM does. Structured-output fields in all their spellings (``guided_*``,
``response_format``, ``structured_outputs``) become one ``StructuredOutputsParams``.
"""

from __future__ import annotations

from typing import Any

from fw.engine.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams
from fw.errors import InvalidParameterError, NotSupportedError
from fw.registry import UnknownNameError
from fw.server.context import ServerContext
from fw.server.protocol.common import SamplingRequest
from fw.structured.selection import canonical_backend

#: the API's default when neither the request nor the model's generation_config sets it
API_DEFAULTS: dict[str, Any] = {
    "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0,
}


def reject_unsupported(request: SamplingRequest) -> None:
    if request.use_beam_search:
        raise NotSupportedError("beam search is not supported by the server yet", param="use_beam_search")
    if request.best_of is not None and request.best_of != request.n:
        raise NotSupportedError(
            f"best_of ({request.best_of}) different from n ({request.n}) is not supported yet",
            param="best_of",
        )


def check_logprobs(ctx: ServerContext, count: int | None, param: str) -> None:
    cap = ctx.model_info.max_logprobs
    if count is None or cap == -1:
        return
    if count > cap:
        raise InvalidParameterError(
            param, f"{count} is more than this server allows ({cap}, set by --max-logprobs)"
        )


def structured_outputs(request: SamplingRequest) -> StructuredOutputsParams | None:
    """Every spelling of a structured-output request, or None. More than one constraint
    is an error (the engine's StructuredOutputsParams.kind() checks)."""
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
    params = StructuredOutputsParams(**spec, source=source, backend=backend)
    params.kind()
    return params


def _backend(name: str | None) -> str | None:
    """A request's guided_decoding_backend, checked now (a typo is a 400 even when the
    request has no constraint for it to compile)."""
    if name is None:
        return None
    try:
        return canonical_backend(name)
    except UnknownNameError as exc:
        raise InvalidParameterError("guided_decoding_backend", str(exc)) from None


def _default(ctx: ServerContext, request: SamplingRequest, name: str) -> Any:
    value = getattr(request, name)
    if value is not None:
        return value
    return ctx.model_info.generation_defaults.get(name, API_DEFAULTS[name])


def _logit_bias(ctx: ServerContext, bias: dict[str, float] | None) -> dict[int, float] | None:
    if not bias:
        return None
    out = {}
    for key, value in bias.items():
        try:
            token = int(key)
        except ValueError:
            raise InvalidParameterError("logit_bias", f"keys must be token ids, got {key!r}") from None
        if not 0 <= token < ctx.model_info.vocab_size:
            raise InvalidParameterError("logit_bias", f"token id {token} is outside the vocabulary")
        out[token] = max(-100.0, min(100.0, float(value)))
    return out


def sampling_params(ctx: ServerContext, request: SamplingRequest, *, max_tokens: int,
                    logprobs: int | None, prompt_logprobs: int | None) -> SamplingParams:
    check_logprobs(ctx, logprobs, "logprobs")
    check_logprobs(ctx, prompt_logprobs, "prompt_logprobs")
    vocab = ctx.model_info.vocab_size
    for name in ("allowed_token_ids", "stop_token_ids"):
        ids = getattr(request, name) or []
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise InvalidParameterError(name, f"token id {bad} is outside the vocabulary (0..{vocab - 1})")
    return SamplingParams(
        n=request.n,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        repetition_penalty=_default(ctx, request, "repetition_penalty"),
        temperature=_default(ctx, request, "temperature"),
        top_p=_default(ctx, request, "top_p"),
        top_k=_default(ctx, request, "top_k"),
        min_p=_default(ctx, request, "min_p"),
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
        logit_bias=_logit_bias(ctx, request.logit_bias),
        allowed_token_ids=request.allowed_token_ids,
        structured_outputs=structured_outputs(request),
        output_kind=RequestOutputKind.DELTA,
    )
