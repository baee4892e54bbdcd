"""The fake engine keeps its word: the same cases through the server, on the fake engine
and on the real one (a tiny random Llama).

Most server tests run on ``FakeEngine``, which imitates what the server passes through:
max_tokens, stop strings and stop token ids (min_tokens, include_stop_str_in_output), n,
logprobs shapes, streaming. Each case here derives what it expects from the engine's own
plain answer to the same prompt, so it holds for any engine that keeps these rules, and
fails for the fake as soon as it stops imitating the real engine (or the other way round).
On the real engine these are also the server's end-to-end tests of the real stop handling.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from tests.core.server.conftest import LiveServer
from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import serve_config, sse_events

PROMPT = "Once upon a time there was a little robot"
MAX_TOKENS = 24


@pytest.fixture(scope="module", params=["fake", "real"])
def live(request, tiny_llama):
    if request.param == "fake":
        engine, options = FakeEngine(), {}
    else:
        from fw.engine.async_engine import AsyncEngine

        options = {"model": str(tiny_llama), "dtype": "float32", "served_model_name": ["fake-model"]}
        engine = AsyncEngine.from_config(serve_config(**options).engine_config())
    server = LiveServer(engine, serve_config(**options)).start()
    yield server
    server.stop()
    asyncio.run(engine.shutdown())


def completion(live, stream: bool = False, **fields) -> tuple[dict, list[dict]]:
    """The final choice (the streamed one, assembled, when ``stream``), and the stream's events."""
    body = {"prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0, "ignore_eos": True, **fields}
    with live.http() as http:
        response = http.post("/v1/completions", json={**body, "stream": stream})
    assert response.status_code == 200, response.text
    if not stream:
        return response.json()["choices"][0], []
    events = [e for e in sse_events(response) if e != "[DONE]"]
    text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
    last = [e["choices"][0] for e in events if e["choices"]][-1]
    return {**last, "text": text}, events


def streamed_prefixes(events: list[dict]) -> list[str]:
    texts, text = [], ""
    for event in events:
        for choice in event["choices"]:
            text += choice["text"]
            texts.append(text)
    return texts


@dataclass
class Plain:
    """The engine's answer without stops: its tokens and the text after each of them."""

    tokens: list[int]
    prefixes: list[str]

    @property
    def text(self) -> str:
        return self.prefixes[-1]


@pytest.fixture(scope="module")
def plain(live) -> Plain:
    choice, _ = completion(live, logprobs=0, return_tokens_as_token_ids=True)
    tokens = [int(t.removeprefix("token_id:")) for t in choice["logprobs"]["tokens"]]
    with live.http() as http:
        prefixes = [http.post("/detokenize", json={"tokens": tokens[:n]}).json()["prompt"]
                    for n in range(len(tokens) + 1)]
    assert len(tokens) == MAX_TOKENS and prefixes[-1] == choice["text"]
    return Plain(tokens, prefixes)


def readable(stop: str) -> bool:
    """Not blank, and no stand-in for bytes of an unfinished character (text that is held
    back anyway until the character is complete, stop string or not)."""
    return bool(stop.strip()) and "\ufffd" not in stop


def assert_answer(live, want_text: str, want_reason: str, stop_reason, **fields):
    """Non-streamed and streamed: the text, why it ended; and no streamed text taken back."""
    choice, _ = completion(live, **fields)
    assert (choice["text"], choice["finish_reason"], choice["stop_reason"]) == (want_text, want_reason, stop_reason)
    choice, events = completion(live, stream=True, **fields)
    assert (choice["text"], choice["finish_reason"]) == (want_text, want_reason)
    assert all(want_text.startswith(text) for text in streamed_prefixes(events))


def test_max_tokens_and_usage(live, plain):
    choice, events = completion(live, stream=True, stream_options={"include_usage": True})
    assert (choice["text"], choice["finish_reason"]) == (plain.text, "length")
    assert events[-1]["usage"]["completion_tokens"] == MAX_TOKENS
    with live.http() as http:
        count = http.post("/tokenize", json={"prompt": PROMPT}).json()["count"]
    assert events[-1]["usage"]["prompt_tokens"] == count


@pytest.mark.parametrize("include", [False, True])
def test_a_stop_string_across_two_steps(live, plain, include):
    stop = next(plain.text[b - 1: b + 1] for b in map(len, plain.prefixes[2:-1]) if readable(plain.text[b - 1: b + 1])
                and plain.text.find(plain.text[b - 1: b + 1]) == b - 1)
    at = plain.text.find(stop)
    want = plain.text[: at + len(stop)] if include else plain.text[:at]
    assert_answer(live, want, "stop", stop, stop=[stop], include_stop_str_in_output=include)


def test_the_earliest_of_two_stops_completed_in_one_step_wins(live, plain):
    text = plain.text
    for start, end in zip(map(len, plain.prefixes[2:-1]), map(len, plain.prefixes[3:])):
        early, late = text[start - 1: start + 1], text[end - 1: end]
        if end > start and readable(early) and readable(late) and text.find(early) == start - 1 \
                and text.find(late) == end - 1:
            break
    else:
        pytest.fail(f"no step of {text!r} completes two stop strings")
    assert_answer(live, text[: start - 1], "stop", early, stop=[late, early])


def test_stop_strings_count_from_min_tokens(live, plain):
    text, size = plain.text, 1
    for min_tokens in range(6, MAX_TOKENS - 4):
        edge = len(plain.prefixes[min_tokens - 1])
        first = next((i for i in range(edge - 2 * size) if readable(text[i: i + size])
                      and text.find(text[i: i + size], edge - 2 * size) >= edge), None)
        if first is not None:
            break
    else:
        pytest.fail(f"no character repeats across a min_tokens boundary in {text!r}")
    stop = text[first: first + size]
    assert_answer(live, text[: text.find(stop, edge)], "stop", stop, stop=[stop], min_tokens=min_tokens)


@pytest.mark.parametrize("include", [False, True])
def test_a_stop_token_id(live, plain, include):
    index = next(i for i in range(3, MAX_TOKENS) if plain.tokens[i] not in plain.tokens[:i])
    token = plain.tokens[index]
    want = plain.prefixes[index + 1] if include else plain.prefixes[index]
    assert_answer(live, want, "stop", token, stop_token_ids=[token], include_stop_str_in_output=include)


def test_a_stop_token_id_waits_for_min_tokens(live, plain):
    token = plain.tokens[1]
    choice, _ = completion(live, stop_token_ids=[token], min_tokens=4, logprobs=0, return_tokens_as_token_ids=True)
    tokens = [int(t.removeprefix("token_id:")) for t in choice["logprobs"]["tokens"]]
    assert token not in tokens[:4] and len(tokens) >= 4
    assert choice["finish_reason"] == ("stop" if tokens[-1] == token else "length")


def test_logprobs_list_the_most_likely_tokens(live, plain):
    choice, _ = completion(live, max_tokens=4, logprobs=3, return_tokens_as_token_ids=True)
    logprobs = choice["logprobs"]
    assert [int(t.removeprefix("token_id:")) for t in logprobs["tokens"]] == plain.tokens[:4]
    assert choice["text"] == plain.prefixes[4]
    for token, value, top in zip(logprobs["tokens"], logprobs["token_logprobs"], logprobs["top_logprobs"]):
        assert len(top) == 3 and top[token] == value == max(top.values())  # greedy: the most likely


def test_n_choices_stream_as_they_answer(live):
    choice_texts = {}
    with live.http() as http:
        full = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 6, "n": 2, "temperature": 0,
                                                  "ignore_eos": True}).json()
        events = sse_events(http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 6, "n": 2,
                                                               "temperature": 0, "ignore_eos": True, "stream": True}))
    for event in events[:-1]:
        for choice in event["choices"]:
            choice_texts[choice["index"]] = choice_texts.get(choice["index"], "") + choice["text"]
    assert sorted(c["index"] for c in full["choices"]) == [0, 1]
    assert choice_texts == {c["index"]: c["text"] for c in full["choices"]}
    assert full["usage"]["completion_tokens"] == 12


def test_prompt_logprobs_cover_the_prompt(live):
    with live.http() as http:
        count = http.post("/tokenize", json={"prompt": PROMPT}).json()["count"]
        body = http.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 1, "prompt_logprobs": 1}).json()
    entries = body["choices"][0]["prompt_logprobs"]
    assert len(entries) == count and entries[0] is None and all(entries[1:])
