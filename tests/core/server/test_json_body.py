"""Request bodies a hostile client writes: non-standard JSON numbers, lone surrogates,
integers beyond 64 bits, values that only look like token ids. Each is a 400 naming the
parameter, never a 500, and the server keeps serving afterwards."""

from __future__ import annotations

import json

import pytest

HI = [{"role": "user", "content": "hi"}]


def post_raw(live, path: str, text: str):
    """POST ``text`` as the body: the JSON is written by hand, as a hostile client would,
    so escapes like \\ud800 and bare NaN reach the server unchanged."""
    with live.http() as http:
        return http.post(path, content=text.encode("utf-8"), headers={"content-type": "application/json"})


def error_of(response) -> dict:
    assert response.status_code == 400, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def still_serving(live) -> None:
    with live.http() as http:
        response = http.post("/v1/completions", json={"prompt": "a", "max_tokens": 2})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_numbers_are_refused_by_the_parser(server, literal):
    response = post_raw(server, "/v1/completions", f'{{"prompt": "a", "temperature": {literal}}}')
    error = error_of(response)
    assert error["code"] == "invalid_json" and literal.lstrip("-") in error["message"]
    assert server.engine.requests == []


def test_nesting_too_deep_to_parse_is_a_400(server):
    error = error_of(post_raw(server, "/v1/completions", '{"prompt": "a", "logit_bias": ' + "[" * 100_000))
    assert error["code"] == "invalid_json" and "nested too deeply" in error["message"]
    still_serving(server)


@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", '{"prompt": "a\\ud800b"}', "prompt"),
    ("/v1/completions", '{"prompt": ["ok", "\\udfff"]}', "prompt[1]"),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "x\\ud800"}]}', "messages[0].content"),
    ("/v1/completions", '{"prompt": "a", "bad_words": ["\\ud83d"]}', "bad_words[0]"),
    ("/v1/completions", '{"prompt": "a", "stop": "\\ud800"}', "stop"),
    ("/tokenize", '{"prompt": "\\ud800"}', "prompt"),
    ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "x", "\\ud800": 1}]}', "messages[0]"),
])
def test_lone_surrogates_are_a_400_naming_the_field(server, path, body, param):
    error = error_of(post_raw(server, path, body))
    assert error["param"] == param and "surrogate" in error["message"]
    still_serving(server)


def test_a_surrogate_pair_is_one_character(server):
    """Escaped pairs are how many JSON encoders write emoji: they must keep working."""
    response = post_raw(server, "/tokenize", '{"prompt": "\\ud83d\\ude00", "add_special_tokens": false}')
    assert response.status_code == 200, response.text
    assert response.json()["count"] == len("😀".encode())  # one token per byte


@pytest.mark.parametrize("field,value", [
    ("seed", 2**63), ("seed", -(2**63) - 1), ("seed", 10**30), ("top_k", 10**30), ("priority", 2**64),
    ("n", 10**30), ("max_tokens", 10**30), ("min_tokens", 10**30), ("logprobs", 10**30),
])
def test_integers_beyond_64_bits_are_a_400(server, field, value):
    response = post_raw(server, "/v1/completions", json.dumps({"prompt": "a", field: value}))
    assert error_of(response)["param"] == field
    still_serving(server)


def test_a_seed_at_the_int64_limits_is_accepted(server):
    for seed in (2**63 - 1, -(2**63)):
        response = post_raw(server, "/v1/completions", json.dumps({"prompt": "a", "max_tokens": 1, "seed": seed}))
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("tokens", [[False], ["0"], [0.0], [True, 5], [1.5]])
def test_detokenize_takes_integers_only(server, tokens):
    response = post_raw(server, "/detokenize", json.dumps({"tokens": tokens}))
    assert error_of(response)["param"].startswith("tokens")


@pytest.mark.parametrize("field", ["allowed_token_ids", "stop_token_ids"])
def test_token_id_lists_take_integers_only(server, field):
    response = post_raw(server, "/v1/completions", json.dumps({"prompt": "a", field: [False]}))
    assert error_of(response)["param"].startswith(field)


@pytest.mark.parametrize("prompt", [[0.0, 5], [False]])
def test_token_id_prompts_take_integers_only(server, prompt):
    response = post_raw(server, "/v1/completions", json.dumps({"prompt": prompt}))
    assert error_of(response)["param"].startswith("prompt")


@pytest.mark.parametrize("path,body,param", [
    ("/v1/responses", '{"input": "x\\ud800"}', "input"),
    ("/v1/responses", '{"input": "x", "seed": 99999999999999999999}', "seed"),
    ("/v1/responses", '{"input": "x", "temperature": NaN}', None),
])
def test_the_responses_api_refuses_the_same_bodies(server, path, body, param):
    error = error_of(post_raw(server, path, body))
    assert error["param"] == param


@pytest.mark.parametrize("body", [
    '{"model": "fake-model", "max_tokens": 5, "messages": [{"role": "user", "content": "x\\udfff"}]}',
    '{"model": "fake-model", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "top_k": 1e999}',
    '{"model": "fake-model", "max_tokens": 99999999999999999999, "messages": [{"role": "user", "content": "x"}]}',
])
def test_the_messages_api_refuses_them_in_anthropic_s_shape(server, body):
    response = post_raw(server, "/v1/messages", body)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "invalid_request_error"
    still_serving(server)
