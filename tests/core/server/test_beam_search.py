"""use_beam_search on /v1/completions and /v1/chat/completions over the fake engine, with
the official openai SDK as the client: n beams, best first by vLLM's score, distinct, no
worse than greedy; the engine sees one single-token request per beam per step asking for
2 x n logprobs; stop strings and tokens, the stream, usage, and the parameters refused."""

from __future__ import annotations

import re

import pytest

from tests.core.server.fake_engine import FakeEngine

HI = [{"role": "user", "content": "hi"}]
BEAMS = {"use_beam_search": True}


@pytest.fixture
def live(start_server):
    return start_server(FakeEngine(max_logprobs=10))


def score(cum: float, prompt_tokens: int, tokens: int, length_penalty: float = 1.0) -> float:
    """vLLM's beam score, for beams that did not end by a token."""
    return cum / (prompt_tokens + tokens) ** length_penalty


def test_completion_beams_are_best_first_distinct_and_no_worse_than_greedy(live):
    client = live.openai()
    result = client.completions.create(model="fake-model", prompt="ab", max_tokens=5, n=3, logprobs=1,
                                       extra_body={**BEAMS, "return_token_ids": True})
    choices = sorted(result.choices, key=lambda c: c.index)
    assert len(choices) == 3 and len({tuple(c.token_ids) for c in choices}) == 3
    prompt_tokens = result.usage.prompt_tokens
    cums = [sum(c.logprobs.token_logprobs) for c in choices]
    scores = [score(cum, prompt_tokens, len(c.token_ids)) for cum, c in zip(cums, choices)]
    assert scores == sorted(scores, reverse=True)
    assert all(c.finish_reason == "length" and len(c.token_ids) == 5 for c in choices)
    assert result.usage.completion_tokens == sum(len(c.token_ids) for c in choices)
    assert result.usage.total_tokens == prompt_tokens + result.usage.completion_tokens
    steps = [(prompt, params) for _, prompt, params in live.engine.requests]
    greedy = client.completions.create(model="fake-model", prompt="ab", max_tokens=5, temperature=0, logprobs=0)
    assert cums[0] >= sum(greedy.choices[0].logprobs.token_logprobs)
    # what the engine was asked: per step, one token per live beam, with 2 x n logprobs
    assert all(params.max_tokens == 1 and params.logprobs == 6 for _, params in steps)
    assert len(steps) == 1 + 4 * 3  # the prompt alone, then three beams for four more tokens
    assert sorted(len(prompt["prompt_token_ids"]) - prompt_tokens for prompt, _ in steps) == \
        [0] + [k for k in range(1, 5) for _ in range(3)]


def test_a_batch_of_prompts_gets_n_beams_each(live):
    client = live.openai()
    batch = client.completions.create(model="fake-model", prompt=["ab", "xyz"], max_tokens=3, n=2, extra_body=BEAMS)
    alone = [client.completions.create(model="fake-model", prompt=p, max_tokens=3, n=2, extra_body=BEAMS)
             for p in ("ab", "xyz")]
    texts = {c.index: c.text for c in batch.choices}
    assert [texts[i] for i in range(4)] == [c.text for r in alone for c in sorted(r.choices, key=lambda c: c.index)]
    assert batch.usage.prompt_tokens == sum(r.usage.prompt_tokens for r in alone)


def test_chat_stream_and_whole_answer_agree(live):
    client = live.openai()
    whole = client.chat.completions.create(model="fake-model", messages=HI, max_completion_tokens=4, n=2,
                                           extra_body={**BEAMS, "length_penalty": 0.5, "early_stopping": "never"})
    stream = client.chat.completions.create(model="fake-model", messages=HI, max_completion_tokens=4, n=2,
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={**BEAMS, "length_penalty": 0.5, "early_stopping": "never"})
    texts, reasons, usage = {0: "", 1: ""}, {}, None
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            reasons[choice.index] = choice.finish_reason or reasons.get(choice.index)
        usage = chunk.usage or usage
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert texts[0] != texts[1]
    assert reasons == {c.index: c.finish_reason for c in whole.choices}
    assert usage.completion_tokens == whole.usage.completion_tokens == 8


def test_stop_strings_and_stop_tokens_end_beams(live):
    client = live.openai()
    x = live.engine.tokenizer.encode("x", add_special_tokens=False)[0]
    result = client.completions.create(model="fake-model", prompt="ab", max_tokens=6, n=3, extra_body={
        **BEAMS, "stop": ["o"], "stop_token_ids": [x], "early_stopping": True, "return_token_ids": True})
    ended = [c for c in result.choices if c.finish_reason == "stop"]
    assert ended, "the fake's second most likely token is always x: some beam takes it"
    for choice in ended:
        assert (choice.stop_reason == x and choice.token_ids[-1] == x and "x" not in choice.text) or \
            (choice.stop_reason == "o" and "o" not in choice.text)
    kept = client.completions.create(model="fake-model", prompt="ab", max_tokens=6, n=3, extra_body={
        **BEAMS, "stop": ["o"], "stop_token_ids": [x], "include_stop_str_in_output": True})
    assert all(c.text.endswith("x" if c.stop_reason == x else "o") for c in kept.choices if c.finish_reason == "stop")


def test_a_stop_string_ends_the_beams_that_write_it(live):
    client = live.openai()
    ask = dict(model="fake-model", prompt="ab", max_tokens=6, n=2)
    free = client.completions.create(**ask, extra_body=BEAMS).choices
    best = next(c.text for c in free if c.index == 0)
    stop = next(ch for k, ch in enumerate(best) if k >= 2 and ch not in best[:k])  # written by the best beam
    stopped = client.completions.create(**ask, extra_body={**BEAMS, "stop": [stop]}).choices
    assert any(c.finish_reason == "stop" and c.model_extra["stop_reason"] == stop for c in stopped)
    assert all(stop not in c.text for c in stopped)


def test_truncate_prompt_tokens_keeps_the_end_of_the_prompt(live):
    result = live.openai().completions.create(model="fake-model", prompt="abcdefgh", max_tokens=2, n=2,
                                              extra_body={**BEAMS, "truncate_prompt_tokens": 3})
    assert result.usage.prompt_tokens == 3
    tail = live.engine.tokenizer.encode("fgh", add_special_tokens=False)
    assert all(prompt["prompt_token_ids"][:3] == tail for _, prompt, _ in live.engine.requests)


def test_min_tokens_holds_stop_tokens_back(live):
    x = live.engine.tokenizer.encode("x", add_special_tokens=False)[0]
    result = live.openai().completions.create(model="fake-model", prompt="ab", max_tokens=4, n=2, extra_body={
        **BEAMS, "stop_token_ids": [x], "min_tokens": 3, "return_token_ids": True})
    assert all(x not in c.token_ids[:2] for c in result.choices)


def test_prompt_logprobs_and_echo(live):
    with live.http() as http:
        body = http.post("/v1/completions", json={"prompt": "abc", "max_tokens": 2, "n": 2, "echo": True,
                                                  "prompt_logprobs": 1, **BEAMS}).json()
    assert all(c["text"].startswith("abc") for c in body["choices"])
    assert body["choices"][0]["prompt_logprobs"][0] is None and len(body["choices"][0]["prompt_logprobs"]) == 4


def test_max_new_tokens_of_the_model_caps_the_search(start_server):
    live = start_server(FakeEngine(max_logprobs=10, generation_defaults={"max_tokens": 3}))
    result = live.openai().chat.completions.create(model="fake-model", messages=HI, n=2, extra_body=BEAMS)
    assert result.usage.completion_tokens == 6 and all(c.finish_reason == "length" for c in result.choices)


@pytest.mark.parametrize("path,extra,param", [
    ("/v1/completions", {"temperature": 0.7}, "temperature"),
    ("/v1/completions", {"top_p": 0.9}, "top_p"),
    ("/v1/completions", {"top_k": 5}, "top_k"),
    ("/v1/completions", {"min_p": 0.1}, "min_p"),
    ("/v1/completions", {"presence_penalty": 0.5}, "presence_penalty"),
    ("/v1/completions", {"frequency_penalty": 0.5}, "frequency_penalty"),
    ("/v1/completions", {"repetition_penalty": 1.2}, "repetition_penalty"),
    ("/v1/completions", {"logit_bias": {"5": 1}}, "logit_bias"),
    ("/v1/completions", {"allowed_token_ids": [5, 6]}, "allowed_token_ids"),
    ("/v1/completions", {"bad_words": ["fox"]}, "bad_words"),
    ("/v1/completions", {"guided_regex": "a+"}, "guided_regex"),
    ("/v1/chat/completions", {"response_format": {"type": "json_object"}}, "response_format"),
    ("/v1/chat/completions", {"tool_choice": "required", "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tool_choice"),
    ("/v1/completions", {"n": 6}, "n"),
    ("/v1/chat/completions", {"max_completion_tokens": 10_000}, "max_completion_tokens"),
    ("/v1/completions", {"early_stopping": "sometimes"}, "early_stopping"),
    ("/v1/chat/completions", {"top_logprobs": 11, "logprobs": True}, "top_logprobs"),
])
def test_what_beams_cannot_honour_is_a_400_naming_it(live, path, extra, param):
    base = {"prompt": "ab"} if path == "/v1/completions" else {"messages": HI}
    with live.http() as http:
        response = http.post(path, json={**base, **BEAMS, "max_tokens": 3, **extra})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    if param in ("guided_regex", "response_format"):
        assert re.search(r"\bstructured outputs\b.*\buse_beam_search\b", error["message"])
    assert not live.engine.running


@pytest.mark.parametrize("field, off", [
    ("temperature", 0.0), ("top_p", 1.0), ("top_k", 0), ("top_k", -1), ("min_p", 0.0), ("presence_penalty", 0.0),
    ("frequency_penalty", 0.0), ("repetition_penalty", 1.0), ("logit_bias", {}), ("bad_words", []),
])
def test_a_sampling_field_set_to_its_off_value_is_accepted(live, field, off):
    """Clients send the neutral value explicitly (the openai SDK's users often do)."""
    with live.http() as http:
        response = http.post("/v1/completions", json={"prompt": "ab", "max_tokens": 2, "n": 2, field: off, **BEAMS})
    assert response.status_code == 200, response.text


def test_seed_and_zero_temperature_are_accepted(live):
    result = live.openai().completions.create(model="fake-model", prompt="ab", max_tokens=2, n=2, seed=7,
                                              temperature=0, extra_body=BEAMS)
    assert len(result.choices) == 2


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_ends_the_search(start_server, stream):
    """Its in-flight step requests are aborted and no later step is submitted."""
    import time

    import httpx

    engine = FakeEngine(max_logprobs=10, token_delay=0.05)
    live = start_server(engine)
    body = {"prompt": "ab", "max_tokens": 200, "n": 2, "stream": stream, "request_id": "gone", **BEAMS}
    with live.http() as http, pytest.raises(httpx.ReadTimeout):
        http.post("/v1/completions", json=body, timeout=0.5)
    deadline = time.monotonic() + 10
    while engine.running or not any(i.startswith("cmpl-gone-beam") for i in engine.aborted):
        assert time.monotonic() < deadline, "the search kept running after the client left"
        time.sleep(0.05)
    submitted = len(engine.requests)
    time.sleep(0.3)
    assert len(engine.requests) == submitted and not engine.running
    assert not live.server_context().lifecycle.in_flight
