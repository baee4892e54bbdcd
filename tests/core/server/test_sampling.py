"""A request's fields as the engine's parameters, field by field (beam search runs in the
server, and the fake engine of the HTTP tests never writes an EOS or a special token, so
the HTTP tests cannot show them all). Each field is set to a value other than its default,
so a field that is dropped on the way shows."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from fw.engine.sampling_params import BeamSearchParams, RequestOutputKind, SamplingParams
from fw.server.protocol.completions import CompletionRequest
from fw.server.sampling import beam_search_params, sampling_params, structured_outputs

#: every BeamSearchParams field a request sets, with a value that is not its default
BEAM_FIELDS = {
    "ignore_eos": True, "length_penalty": 0.5, "early_stopping": "never", "stop": ["x", "yz"],
    "stop_token_ids": [5, 6], "include_stop_str_in_output": True, "min_tokens": 2,
    "skip_special_tokens": False, "spaces_between_special_tokens": False, "truncate_prompt_tokens": 4,
}


def test_every_beam_search_field_of_a_request_reaches_the_search():
    request = CompletionRequest(prompt="a", use_beam_search=True, n=3, **BEAM_FIELDS)
    params = beam_search_params(request, max_tokens=7, logprobs=2, prompt_logprobs=1)
    defaults = asdict(BeamSearchParams(beam_width=1, max_tokens=None))
    assert all(BEAM_FIELDS[name] != defaults[name] for name in BEAM_FIELDS)
    assert asdict(params) == {**defaults, **BEAM_FIELDS, "beam_width": 3, "max_tokens": 7, "logprobs": 2,
                              "prompt_logprobs": 1}


#: every SamplingParams field a request sets directly, with a value that is not its default
SAMPLING_FIELDS = {
    "n": 2, "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.2, "temperature": 0.7,
    "top_p": 0.9, "top_k": 5, "min_p": 0.1, "seed": 11, "stop": ["x"], "stop_token_ids": [7], "bad_words": ["zz"],
    "include_stop_str_in_output": True, "ignore_eos": True, "min_tokens": 2, "skip_special_tokens": False,
    "spaces_between_special_tokens": False, "truncate_prompt_tokens": 4, "allowed_token_ids": [5, 6],
    "logits_processors": ["some.module:Processor"],
}


def test_every_sampling_field_of_a_request_reaches_the_engine():
    request = CompletionRequest(prompt="a", vllm_xargs={"target_token": 3}, logit_bias={"9": 2.5},
                                guided_regex="a+", **SAMPLING_FIELDS)
    params = sampling_params(request, max_tokens=7, logprobs=2, prompt_logprobs=1)
    defaults = SamplingParams()
    assert all(SAMPLING_FIELDS[name] != getattr(defaults, name) for name in SAMPLING_FIELDS)
    assert {name: getattr(params, name) for name in SAMPLING_FIELDS} == SAMPLING_FIELDS
    assert (params.max_tokens, params.logprobs, params.prompt_logprobs) == (7, 2, 1)
    assert params.extra_args == {"target_token": 3} and params.logit_bias == {9: 2.5}
    assert params.structured_outputs.regex == "a+" and params.output_kind == RequestOutputKind.DELTA


def test_unset_penalties_are_none_and_unset_sampling_is_left_to_the_model():
    """OpenAI's penalties may be null (no penalty); what the request leaves unset the
    engine's admission fills from the model's generation config."""
    params = sampling_params(CompletionRequest(prompt="a", presence_penalty=None, frequency_penalty=None),
                             max_tokens=None, logprobs=None, prompt_logprobs=None)
    assert (params.presence_penalty, params.frequency_penalty) == (0.0, 0.0)
    assert (params.temperature, params.top_p, params.top_k, params.min_p, params.repetition_penalty) == (None,) * 5


def test_logit_bias_is_clamped_to_openais_range():
    bias = sampling_params(CompletionRequest(prompt="a", logit_bias={"9": 200, "10": -300, "11": -0.5}),
                           max_tokens=None, logprobs=None, prompt_logprobs=None).logit_bias
    assert bias == {9: 100.0, 10: -100.0, 11: -0.5}


def test_structured_outputs_options_reach_the_constraint():
    so = structured_outputs(CompletionRequest(prompt="a", structured_outputs={
        "json": {"type": "object"}, "whitespace_pattern": " ?", "disable_any_whitespace": True,
        "disable_additional_properties": True}, guided_decoding_backend="xgrammar"))
    assert (so.json, so.whitespace_pattern, so.disable_any_whitespace, so.disable_additional_properties) == (
        {"type": "object"}, " ?", True, True)
    assert (so.source, so.backend, so.kind()) == ("structured_outputs", "xgrammar", "json")
    # a guided_* field adds to the object: its whitespace pattern, or its constraint (named by it)
    so = structured_outputs(CompletionRequest(prompt="a", structured_outputs={"disable_any_whitespace": True},
                                              guided_choice=["a", "b"], guided_whitespace_pattern=" "))
    assert (so.choice, so.whitespace_pattern, so.disable_any_whitespace, so.source) == (
        ["a", "b"], " ", True, "guided_choice")
    assert structured_outputs(CompletionRequest(prompt="a", structured_outputs={"disable_any_whitespace": True})) \
        is None
    # a whitespace pattern is no constraint: given in both places, the guided_* one is used
    so = structured_outputs(CompletionRequest(prompt="a", structured_outputs={"json": {}, "whitespace_pattern": " ?"},
                                              guided_whitespace_pattern=" "))
    assert (so.json, so.whitespace_pattern) == ({}, " ")


@pytest.mark.parametrize("constraint, value", [
    ("json", {"type": "object"}), ("regex", "a+"), ("choice", ["a", "b"]), ("grammar", "root ::= 'a'"),
    ("json_object", True)])
def test_each_constraint_of_structured_outputs_reaches_the_engine(constraint, value):
    """vLLM's ``structured_outputs`` object: whichever constraint it sets is the one the
    engine compiles, and the request names it as its source."""
    so = structured_outputs(CompletionRequest(prompt="a", structured_outputs={constraint: value}))
    assert (so.kind(), getattr(so, constraint), so.source) == (constraint, value, "structured_outputs")
