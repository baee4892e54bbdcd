"""Each request rule of the engine's admission step, seen over HTTP: the refusal names the
parameter as the API called spells it, and what a request leaves unset comes from the
model's generation config. (The fake engine admits through the real ``Admission``.)"""

from __future__ import annotations

import pytest

from tests.core.server.fake_engine import FakeEngine
from tests.core.server.test_errors import HI, error_of, post


@pytest.fixture
def small(start_server):
    return start_server(FakeEngine(max_model_len=32, max_logprobs=5, max_num_seqs=4))


def refusal(live, path, body) -> dict:
    response = post(live, path, body)
    assert response.status_code == 400, response.text
    return error_of(response)


def test_a_prompt_that_leaves_no_room_names_both_numbers(small):
    error = refusal(small, "/v1/completions", {"prompt": "x" * 40})
    assert error["param"] == "prompt" and error["code"] == "context_length_exceeded"
    assert "41 tokens" in error["message"] and "32 tokens" in error["message"]
    error = refusal(small, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 40}]})
    assert error["param"] == "messages" and "32 tokens" in error["message"]


@pytest.mark.parametrize("path,field,body", [
    ("/v1/completions", "max_tokens", {"prompt": "abcdefghij"}),
    ("/v1/chat/completions", "max_tokens", {"messages": HI}),
    ("/v1/chat/completions", "max_completion_tokens", {"messages": HI}),
])
def test_max_tokens_beyond_the_context_says_how_many_fit(small, path, field, body):
    error = refusal(small, path, {**body, field: 30})
    assert error["param"] == field and error["code"] == "context_length_exceeded"
    assert error["message"].startswith(f"{field}: ")
    assert "32 tokens" in error["message"] and "30 for the output" in error["message"]
    assert "ask for at most" in error["message"]


@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", {"prompt": "a", "logprobs": 6}, "logprobs"),
    ("/v1/completions", {"prompt": "a", "prompt_logprobs": 6}, "prompt_logprobs"),
    ("/v1/chat/completions", {"messages": HI, "logprobs": True, "top_logprobs": 6}, "top_logprobs"),
    ("/v1/chat/completions", {"messages": HI, "prompt_logprobs": -1}, "prompt_logprobs"),
])
def test_logprobs_beyond_the_cap(small, path, body, param):
    error = refusal(small, path, body)
    assert error["param"] == param and "--max-logprobs" in error["message"]


@pytest.mark.parametrize("field,value", [
    ("prompt", [1, 999999]), ("allowed_token_ids", [999999]), ("stop_token_ids", [5, 999999]),
    ("logit_bias", {"999999": 1.0}),
])
def test_token_ids_outside_the_vocabulary(small, field, value):
    body = {"prompt": "a", "max_tokens": 1, field: value}
    error = refusal(small, "/v1/completions", body)
    assert error["param"] == field and "999999" in error["message"]


def test_n_beyond_max_num_seqs(small):
    error = refusal(small, "/v1/completions", {"prompt": "a", "max_tokens": 1, "n": 5})
    assert error["param"] == "n" and "--max-num-seqs" in error["message"]


def test_an_empty_token_prompt(small):
    assert refusal(small, "/v1/completions", {"prompt": [[]], "max_tokens": 1})["param"] == "prompt"


def test_a_request_larger_than_the_kv_cache(start_server):
    engine = FakeEngine(max_model_len=256)
    engine.admission.num_kv_blocks = 2  # 32 tokens of cache
    live = start_server(engine)
    error = refusal(live, "/v1/completions", {"prompt": "a", "max_tokens": 100})
    assert error["param"] == "max_tokens" and "KV-cache blocks" in error["message"]


def test_unset_fields_take_the_models_generation_config(start_server):
    engine = FakeEngine(max_model_len=64, generation_defaults={"temperature": 0.25, "top_k": 7, "max_tokens": 5})
    live = start_server(engine)
    result = live.openai().chat.completions.create(model="fake-model", messages=HI)
    assert result.usage.completion_tokens == 5  # the model's max_new_tokens, not the 60 left
    params = engine.requests[-1][2]
    assert (params.temperature, params.top_k, params.top_p) == (0.25, 7, 1.0)
    live.openai().chat.completions.create(model="fake-model", messages=HI, temperature=0.9, max_tokens=3)
    params = engine.requests[-1][2]
    assert (params.temperature, params.top_k, params.max_tokens) == (0.9, 7, 3)
    live.openai().chat.completions.create(model="fake-model", messages=HI, max_tokens=8)
    assert engine.requests[-1][2].max_tokens == 5  # max_new_tokens caps every request (vLLM's server-wide limit)


def test_truncation_is_what_usage_counts(small):
    body = post(small, "/v1/completions", {"prompt": "abcdefgh", "max_tokens": 2, "truncate_prompt_tokens": 3}).json()
    assert body["usage"]["prompt_tokens"] == 3
