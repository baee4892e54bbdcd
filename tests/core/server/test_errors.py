"""Every client mistake is a 4xx in OpenAI's error shape; the server keeps serving."""

from __future__ import annotations

import logging
import re

import openai
import pytest

from fw.server.errors import MAX_MESSAGE_CHARS
from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import sse_events

HI = [{"role": "user", "content": "hi"}]


def post(live, path: str, body=None, **kwargs):
    with live.http() as http:
        return http.post(path, json=body, **kwargs) if body is not None else http.post(path, **kwargs)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_unknown_model_is_404(server):
    with pytest.raises(openai.NotFoundError) as err:
        server.openai().completions.create(model="gpt-9", prompt="a")
    assert err.value.body["code"] == "model_not_found" and "'gpt-9'" in err.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        server.openai().chat.completions.create(model="gpt-9", messages=HI)


def test_suffix_is_refused_by_name(server):
    response = post(server, "/v1/completions", {"prompt": "a", "suffix": "b"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "suffix" and "not supported" in error["message"]


@pytest.mark.parametrize("path,body", [
    ("/v1/completions", {"prompt": "a", "frobnicate": 1}),
    ("/v1/chat/completions", {"messages": HI, "frobnicate": 1}),
])
def test_unknown_parameter_is_named(server, path, body):
    response = post(server, path, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "frobnicate" and error["code"] == "unknown_parameter"


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b"null"])
def test_malformed_json_is_400(server, body):
    response = post(server, "/v1/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error_of(response)


@pytest.mark.parametrize("field,value", [
    ("temperature", -1), ("top_p", 0), ("n", 0), ("presence_penalty", 5), ("max_tokens", 0),
    ("temperature", "hot"), ("stop", 5), ("min_tokens", -1), ("logit_bias", {"abc": 1}),
    ("allowed_token_ids", [10**9]), ("truncate_prompt_tokens", 0),
])
def test_invalid_values_name_the_parameter(server, field, value):
    response = post(server, "/v1/completions", {"prompt": "a", field: value})
    assert response.status_code == 400, response.text
    assert error_of(response)["param"] == field


def test_missing_required_field(server):
    response = post(server, "/v1/chat/completions", {"max_tokens": 3})
    assert response.status_code == 400 and error_of(response)["param"] == "messages"


def test_context_length_gives_both_numbers(start_server):
    live = start_server(FakeEngine(max_model_len=32))
    response = post(live, "/v1/completions", {"prompt": "abcdefghij", "max_tokens": 30})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "context_length_exceeded" and error["param"] == "max_tokens"
    assert all(part in error["message"] for part in ("11 in the prompt", "32 tokens", "30 for the output"))
    response = post(live, "/v1/completions", {"prompt": "x" * 40, "max_tokens": 1})
    assert "41 tokens" in error_of(response)["message"]
    with pytest.raises(openai.BadRequestError) as err:
        live.openai().chat.completions.create(model="fake-model", messages=HI, max_completion_tokens=30)
    assert err.value.body["param"] == "max_completion_tokens"


def test_logprobs_beyond_the_cap(server):
    response = post(server, "/v1/completions", {"prompt": "a", "logprobs": 6})
    assert response.status_code == 400 and error_of(response)["param"] == "logprobs"
    assert "--max-logprobs" in error_of(response)["message"]
    response = post(server, "/v1/chat/completions", {"messages": HI, "logprobs": True, "top_logprobs": 6})
    assert response.status_code == 400 and error_of(response)["param"] == "top_logprobs"
    response = post(server, "/v1/completions", {"prompt": "a", "prompt_logprobs": 9})
    assert response.status_code == 400 and error_of(response)["param"] == "prompt_logprobs"


@pytest.mark.parametrize("extra,kind,source", [
    ({"guided_json": {"type": "object"}}, "json", "guided_json"),
    ({"guided_regex": "a+"}, "regex", "guided_regex"),
    ({"guided_choice": ["x", "y"]}, "choice", "guided_choice"),
    ({"guided_grammar": "root ::= 'a'", "guided_decoding_backend": "xgrammar"}, "grammar", "guided_grammar"),
    ({"response_format": {"type": "json_object"}}, "json_object", "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}},
     "json", "response_format"),
    ({"structured_outputs": {"choice": ["a", "b"]}}, "choice", "structured_outputs"),
])
def test_structured_outputs_reach_the_engine(server, extra, kind, source):
    for path, body in (("/v1/completions", {"prompt": "a"}), ("/v1/chat/completions", {"messages": HI})):
        response = post(server, path, {**body, **extra})
        assert response.status_code == 200, response.text
        constraint = server.engine.requests[-1][2].structured_outputs
        assert constraint.kind() == kind and constraint.param_name() == source


def test_structured_outputs_reach_the_engine_mapped():
    from fw.server.protocol.completions import CompletionRequest
    from fw.server.sampling import structured_outputs

    spec = structured_outputs(CompletionRequest(prompt="a", guided_json={"type": "object"},
                                                guided_whitespace_pattern=r"\s*"))
    assert spec.json == {"type": "object"} and spec.whitespace_pattern == r"\s*" and spec.kind() == "json"
    spec = structured_outputs(CompletionRequest(prompt="a", structured_outputs={"regex": "a+"}))
    assert spec.kind() == "regex"
    assert structured_outputs(CompletionRequest(prompt="a", response_format={"type": "text"})) is None


def test_two_structured_constraints_are_a_400(server):
    response = post(server, "/v1/completions", {"prompt": "a", "guided_regex": "a", "guided_choice": ["a"]})
    assert response.status_code == 400 and error_of(response)["param"] == "guided_choice"
    assert "exactly one of" in error_of(response)["message"]


@pytest.mark.parametrize("path,body,param", [
    ("/v1/completions", {"prompt": "a", "use_beam_search": True, "temperature": 0.8}, "temperature"),
    ("/v1/chat/completions", {"messages": HI, "use_beam_search": True, "response_format": {"type": "json_object"}},
     "response_format"),
    ("/v1/completions", {"prompt": "a", "length_penalty": 2.0}, "length_penalty"),
    ("/v1/chat/completions", {"messages": HI, "early_stopping": "never"}, "early_stopping"),
    ("/v1/completions", {"prompt": "a", "best_of": 3}, "best_of"),
    ("/v1/chat/completions", {"messages": HI, "audio": {"voice": "x"}}, "audio"),
    ("/v1/chat/completions", {"messages": HI, "modalities": ["text", "audio"]}, "modalities"),
    ("/v1/completions", {"prompt": "a", "stream_options": {"include_usage": True}}, "stream_options"),
    ("/v1/chat/completions", {"messages": HI, "stream_options": {"include_usage": True}}, "stream_options"),
])
def test_unsupported_features_say_so(server, path, body, param):
    response = post(server, path, body)
    assert response.status_code == 400 and error_of(response)["param"] == param


@pytest.mark.parametrize("body, param, says", [
    ({"guided_json": {"type": "object"}, "structured_outputs": {"json": {"type": "object"}}}, "guided_json",
     r"\bgiven twice \(also in structured_outputs\)"),
    ({"guided_whitespace_pattern": " "}, "guided_whitespace_pattern", r"\bonly applies to a JSON constraint\b"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "n"}}}, "response_format",
     r"\bjson_schema\.schema is required\b"),
    ({"logit_bias": {"abc": 1}}, "logit_bias", r"\bkeys must be token ids, got 'abc'"),
    ({"length_penalty": 2.0}, "length_penalty", r"\bonly applies to beam search \(use_beam_search: true\)"),
    ({"early_stopping": True}, "early_stopping", r"\bonly applies to beam search \(use_beam_search: true\)"),
    ({"best_of": 3}, "best_of", r"\bbest_of \(3\) different from n \(1\) is not supported\b"),
])
def test_sampling_mistakes_name_the_parameter_and_say_why(server, body, param, says):
    response = post(server, "/v1/completions", {"prompt": "a", "max_tokens": 1, **body})
    assert response.status_code == 400, response.text
    assert error_of(response)["param"] == param and re.search(says, error_of(response)["message"])


def test_best_of_equal_to_n_is_served(server):
    response = post(server, "/v1/completions", {"prompt": "a", "max_tokens": 1, "n": 2, "best_of": 2})
    assert response.status_code == 200 and len(response.json()["choices"]) == 2


def test_overload_is_503_with_retry_after(start_server):
    engine = FakeEngine(queue_limit=0)
    live = start_server(engine)
    response = post(live, "/v1/completions", {"prompt": "a"})
    assert response.status_code == 503 and response.headers["retry-after"] == "3"
    assert error_of(response)["code"] == "overloaded"
    streamed = post(live, "/v1/chat/completions", {"messages": HI, "stream": True})
    assert streamed.status_code == 503  # refused before the stream starts


def test_error_messages_are_bounded(server):
    response = post(server, "/v1/completions", {"prompt": "a", "x" * 100_000: 1})
    assert response.status_code == 400
    error = error_of(response)
    assert len(error["message"]) <= MAX_MESSAGE_CHARS and len(error["param"]) <= 200
    assert len(response.content) < 4 * MAX_MESSAGE_CHARS


def test_empty_prompt_and_bad_token_ids(server):
    response = post(server, "/v1/completions", {"prompt": []})
    assert response.status_code == 400 and error_of(response)["param"] == "prompt"
    assert re.search(r"\bmust not be empty\b", error_of(response)["message"])
    assert post(server, "/v1/completions", {"prompt": ""}).status_code == 200  # the BOS is a prompt
    response = post(server, "/v1/completions", {"prompt": [1, 999999]})
    assert response.status_code == 400 and error_of(response)["param"] == "prompt"
    assert post(server, "/v1/chat/completions", {"messages": []}).status_code == 400


def _error_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_internal_failure_is_500_and_the_server_keeps_serving(start_server, caplog):
    engine = FakeEngine()
    live = start_server(engine)
    engine.fail_after = 0
    response = post(live, "/v1/completions", {"prompt": "a"}, headers={"X-Request-Id": "trace-me"})
    assert response.status_code == 500 and error_of(response)["code"] == "internal_error"
    assert "request id trace-me" in error_of(response)["message"]
    assert response.headers["x-request-id"] == "trace-me"
    engine.fail_after = None
    assert post(live, "/v1/completions", {"prompt": "a"}).status_code == 200
    # one log line names the request and the exception; no traceback, from fw or uvicorn
    (record,) = _error_records(caplog)
    message = record.getMessage()
    assert "trace-me" in message and "RuntimeError: fake engine failure" in message
    assert "fake_engine.py" in message and "\n" not in message and record.exc_info is None


def test_internal_failure_with_log_error_stack_has_one_traceback(start_server, caplog):
    engine = FakeEngine()
    live = start_server(engine, log_error_stack=True)
    engine.fail_after = 0
    response = post(live, "/v1/completions", {"prompt": "a"})
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert f"request id {request_id}" in error_of(response)["message"]
    assert post(live, "/v1/models").status_code == 405  # the first request's handling is over
    (record,) = _error_records(caplog)
    assert request_id in record.getMessage() and record.exc_info is not None


def test_failure_mid_stream_is_an_error_event(start_server, caplog):
    engine = FakeEngine()
    live = start_server(engine)
    engine.fail_after = 2
    response = post(live, "/v1/completions", {"prompt": "a", "stream": True})
    assert response.status_code == 200
    events = sse_events(response)
    assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == "internal_error"
    assert engine.aborted  # the failed request was aborted
    (record,) = _error_records(caplog)
    assert "RuntimeError: fake engine failure" in record.getMessage() and record.exc_info is None


def test_dead_engine(start_server):
    engine = FakeEngine()
    live = start_server(engine)
    engine.dead = True
    with live.http() as http:
        health = http.get("/health")
    assert health.status_code == 503 and error_of(health)["code"] == "engine_dead"
    response = post(live, "/v1/completions", {"prompt": "a"})
    assert response.status_code == 500 and error_of(response)["code"] == "engine_dead"


def test_unknown_route_and_method(server):
    with server.http() as http:
        response = http.get("/v1/nothing")
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
        response = http.get("/v1/completions")
        assert response.status_code == 405
