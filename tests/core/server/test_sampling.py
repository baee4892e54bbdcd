"""A request's fields as the engine's parameters: what the fake engine of the HTTP tests
cannot show, because beam search runs in the server and the fake never writes an EOS or a
special token. Each field is set to a value other than its default, so a field that is
dropped on the way shows."""

from __future__ import annotations

from dataclasses import asdict

from fw.engine.sampling_params import BeamSearchParams
from fw.server.protocol.completions import CompletionRequest
from fw.server.sampling import beam_search_params

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
