"""/v1/completions through the official openai client and raw HTTP."""

from __future__ import annotations

import pytest

from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import sse_events


def test_completion_text_and_usage(server):
    result = server.openai().completions.create(model="fake-model", prompt="hello", max_tokens=7, temperature=0)
    choice = result.choices[0]
    assert len(choice.text) == 7 and choice.finish_reason == "length"
    assert result.model == "fake-model" and result.id.startswith("cmpl-")
    usage = result.usage
    assert usage.prompt_tokens == 6  # <s> + 5 bytes
    assert usage.completion_tokens == 7
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streaming_gives_the_same_text(server):
    client = server.openai()
    full = client.completions.create(model="fake-model", prompt="abc", max_tokens=12, temperature=0)
    chunks = list(client.completions.create(model="fake-model", prompt="abc", max_tokens=12, temperature=0,
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks) == full.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stream_ends_with_done_and_usage_chunk(server):
    with server.http() as http:
        response = http.post("/v1/completions", json={
            "prompt": "abc", "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}})
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8,
                                    "prompt_tokens_details": {"cached_tokens": 0}}
    assert all(e["usage"] is None for e in events[:-2])


def test_continuous_usage_stats(server):
    with server.http() as http:
        response = http.post("/v1/completions", json={
            "prompt": "abc", "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}})
    events = [e for e in sse_events(response) if e != "[DONE]"]
    completions = [e["usage"]["completion_tokens"] for e in events]
    assert completions == sorted(completions) and completions[-1] == 3
    assert all(e["usage"]["total_tokens"] == e["usage"]["prompt_tokens"] + e["usage"]["completion_tokens"]
               for e in events)
    assert all(e["usage"]["prompt_tokens_details"] == {"cached_tokens": 0} for e in events)


def test_force_include_usage(start_server):
    live = start_server(enable_force_include_usage=True)
    with live.http() as http:
        events = sse_events(http.post("/v1/completions", json={"prompt": "a", "max_tokens": 2, "stream": True}))
    assert events[-2]["usage"]["completion_tokens"] == 2


def test_n_and_batch_prompts_are_indexed(server):
    result = server.openai().completions.create(model="fake-model", prompt=["one", "two"], n=2, max_tokens=3)
    assert sorted(c.index for c in result.choices) == [0, 1, 2, 3]
    assert result.usage.prompt_tokens == 4 + 4
    assert result.usage.completion_tokens == 4 * 3
    chunks = list(server.openai().completions.create(model="fake-model", prompt=["one", "two"], n=2,
                                                     max_tokens=3, stream=True))
    streamed: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + choice.text
    assert streamed == {c.index: c.text for c in result.choices}


def test_token_id_prompts(server):
    ids = server.engine.tokenizer.encode("hi", add_special_tokens=False)
    result = server.openai().completions.create(model="fake-model", prompt=ids, max_tokens=2)
    assert result.usage.prompt_tokens == len(ids)
    result = server.openai().completions.create(model="fake-model", prompt=[ids, ids + ids], max_tokens=2)
    assert result.usage.prompt_tokens == 3 * len(ids)


def test_echo_prepends_the_prompt(server):
    client = server.openai()
    result = client.completions.create(model="fake-model", prompt="Say:", max_tokens=3, echo=True)
    assert result.choices[0].text.startswith("Say:") and len(result.choices[0].text) == 7
    chunks = list(client.completions.create(model="fake-model", prompt="Say:", max_tokens=3, echo=True, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == result.choices[0].text


def test_echo_of_a_token_id_prompt_is_its_text(server):
    ids = server.engine.tokenizer.encode("Say:", add_special_tokens=False)
    result = server.openai().completions.create(model="fake-model", prompt=ids, max_tokens=3, echo=True)
    assert result.choices[0].text.startswith("Say:") and len(result.choices[0].text) == 7


def test_logprobs_shape(server):
    result = server.openai().completions.create(model="fake-model", prompt="x", max_tokens=3, logprobs=2)
    lp = result.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 3
    assert "".join(lp.tokens) == result.choices[0].text
    assert lp.text_offset == [0, 1, 2]
    assert all(len(top) == 2 for top in lp.top_logprobs)  # the two most likely, the sampled one among them
    assert all(isinstance(v, float) for v in lp.token_logprobs)


def test_echo_with_logprobs_covers_the_prompt(server):
    result = server.openai().completions.create(model="fake-model", prompt="ab", max_tokens=2, logprobs=1, echo=True)
    lp = result.choices[0].logprobs
    assert len(lp.tokens) == 3 + 2  # <s>, a, b, then two generated
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert lp.text_offset == [0, 0, 1, 2, 3]  # the BOS takes no room in the text


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("as_ids", [False, True])
def test_echoed_prompt_carries_the_engines_prompt_logprobs(server, stream, as_ids):
    """OpenAI's echo with logprobs: the prompt's tokens come first, each with its logprob and
    alternatives (none for the first token, which nothing predicts)."""
    ask = dict(model="fake-model", prompt="ab", max_tokens=2, logprobs=2, echo=True,
               extra_body={"return_tokens_as_token_ids": as_ids})
    if stream:
        chunks = list(server.openai().completions.create(stream=True, **ask))
        lp = chunks[0].choices[0].logprobs
    else:
        lp = server.openai().completions.create(**ask).choices[0].logprobs
    engine = server.engine
    first = engine.outputs[engine.requests[-1][0]][0]
    ids, positions = first.prompt_token_ids, first.prompt_logprobs
    name = (lambda tid, text: f"token_id:{tid}") if as_ids else (lambda tid, text: text)
    assert len(ids) == 3 and lp.tokens[:3] == [name(t, engine.tokenizer.decode([t])) for t in ids]
    assert lp.token_logprobs[:3] == [None] + [position[t].logprob for t, position in zip(ids[1:], positions[1:])]
    assert lp.top_logprobs[:3] == [None] + [{name(tid, entry.decoded_token): entry.logprob
                                             for tid, entry in position.items()} for position in positions[1:]]
    assert all(len(top) == 2 for top in lp.top_logprobs[1:])


def test_return_tokens_as_token_ids(start_server):
    live = start_server(return_tokens_as_token_ids=True)
    result = live.openai().completions.create(model="fake-model", prompt="x", max_tokens=2, logprobs=1)
    assert all(t.startswith("token_id:") for t in result.choices[0].logprobs.tokens)
    # per request it can be turned off again
    result = live.openai().completions.create(model="fake-model", prompt="x", max_tokens=2, logprobs=1,
                                              extra_body={"return_tokens_as_token_ids": False})
    assert not any(t.startswith("token_id:") for t in result.choices[0].logprobs.tokens)


def test_stop_string_and_stop_reason(server):
    engine = server.engine
    prompt = "p"
    client = server.openai()
    text = client.completions.create(model="fake-model", prompt=prompt, max_tokens=30, temperature=0).choices[0].text
    stop = text[5:7]
    result = server.openai().completions.create(model="fake-model", prompt=prompt, max_tokens=30, temperature=0,
                                                stop=[stop])
    choice = result.choices[0]
    assert choice.finish_reason == "stop" and choice.text == text[: text.find(stop)]
    assert choice.model_extra["stop_reason"] == stop
    assert engine.requests[-1][2].stop == [stop]


def test_vllm_extra_parameters_reach_the_engine(server):
    server.openai().completions.create(model="fake-model", prompt="hi", max_tokens=4, extra_body={
        "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2, "min_tokens": 2, "ignore_eos": True,
        "stop_token_ids": [7], "skip_special_tokens": False, "allowed_token_ids": [5, 6, 7],
        "include_stop_str_in_output": True, "seed": 3, "logit_bias": {"9": 200}, "bad_words": ["zz"],
        "priority": 0, "spaces_between_special_tokens": False, "length_penalty": 1.0,
    })
    params = server.engine.requests[-1][2]
    assert (params.top_k, params.min_p, params.repetition_penalty, params.min_tokens) == (5, 0.1, 1.2, 2)
    assert params.ignore_eos and not params.skip_special_tokens and params.include_stop_str_in_output
    assert params.stop_token_ids == [7] and params.allowed_token_ids == [5, 6, 7]
    assert params.logit_bias == {9: 100.0}  # clamped to OpenAI's range
    assert params.bad_words == ["zz"] and params.seed == 3


def test_truncate_prompt_tokens_keeps_the_end(server):
    result = server.openai().completions.create(model="fake-model", prompt="abcdefgh", max_tokens=2,
                                                extra_body={"truncate_prompt_tokens": 3})
    assert result.usage.prompt_tokens == 3
    tail = server.engine.tokenizer.encode("fgh", add_special_tokens=False)
    assert server.engine.requests[-1][1]["prompt_token_ids"] == tail


def test_max_tokens_null_fills_the_context(start_server):
    live = start_server(FakeEngine(max_model_len=40))
    with live.http() as http:
        body = http.post("/v1/completions", json={"prompt": "abcd", "max_tokens": None}).json()
    assert body["usage"]["completion_tokens"] == 40 - 5


def test_prompt_tokens_details_by_default(server):
    """The prefix cache's hits are reported without a flag (vLLM needs one)."""
    client = server.openai()
    first = client.completions.create(model="fake-model", prompt="same prompt", max_tokens=1)
    again = client.completions.create(model="fake-model", prompt="same prompt", max_tokens=1)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1
    chat = [{"role": "user", "content": "same"}]
    client.chat.completions.create(model="fake-model", messages=chat, max_tokens=1)
    again = client.chat.completions.create(model="fake-model", messages=chat, max_tokens=1)
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens - 1


def test_prompt_tokens_details_can_be_turned_off(start_server):
    live = start_server(enable_prompt_tokens_details=False)
    usage = live.openai().completions.create(model="fake-model", prompt="abc", max_tokens=1).usage
    assert usage.prompt_tokens_details is None


@pytest.mark.parametrize("path, ask", [("/v1/completions", {"prompt": "ab"}),
                                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": "ab"}]})])
def test_prompt_logprobs_in_vllms_shape(server, path, ask):
    """vLLM's prompt_logprobs: per prompt token (None for the first) a dict from token id
    (a string, as JSON keys are) to its logprob, rank and text, the prompt's own token among them."""
    with server.http() as http:
        body = http.post(path, json={**ask, "max_tokens": 1, "prompt_logprobs": 2}).json()
    plp = body["choices"][0]["prompt_logprobs"] if path == "/v1/completions" else body["prompt_logprobs"]
    engine = server.engine
    first = engine.outputs[engine.requests[-1][0]][0]
    ids = first.prompt_token_ids
    assert len(plp) == len(ids) and plp[0] is None
    for position, token, given in zip(plp[1:], ids[1:], first.prompt_logprobs[1:]):
        assert str(token) in position
        assert position == {str(tid): {"logprob": lp.logprob, "rank": lp.rank,
                                       "decoded_token": engine.tokenizer.decode([tid])} for tid, lp in given.items()}


def test_model_defaults_to_the_served_one(server):
    with server.http() as http:
        body = http.post("/v1/completions", json={"prompt": "a", "max_tokens": 1}).json()
    assert body["model"] == "fake-model"


@pytest.mark.parametrize("name", ["fake-model", "alias"])
def test_any_served_name_is_accepted_and_the_first_is_returned(start_server, name):
    live = start_server(FakeEngine(served_names=("fake-model", "alias")))
    result = live.openai().completions.create(model=name, prompt="a", max_tokens=1)
    assert result.model == "fake-model"


LOGPROB_LISTS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


def added_up(events) -> dict[int, dict]:
    """A completions stream per choice index: its text, logprobs lists and token ids
    concatenated, its last finish and stop reasons, and what each chunk carried of the prompt.
    Checks on the way that no chunk is empty."""
    choices: dict[int, dict] = {}
    for event in events:
        for c in event["choices"]:
            seen = choices.setdefault(c["index"], {"text": "", "token_ids": [], "finish_reason": None,
                                                   "stop_reason": None, "prompt_logprobs": [],
                                                   "prompt_token_ids": [], **{k: [] for k in LOGPROB_LISTS}})
            logprobs = c["logprobs"] or {k: [] for k in LOGPROB_LISTS}
            assert c["text"] or c["finish_reason"] or c.get("token_ids") or logprobs["tokens"], c
            seen["text"] += c["text"]
            seen["token_ids"] += c.get("token_ids") or []
            seen["prompt_logprobs"].append(c["prompt_logprobs"])
            seen["prompt_token_ids"].append(c.get("prompt_token_ids"))
            for key in LOGPROB_LISTS:
                seen[key] += logprobs[key]
            if c["finish_reason"] is not None:
                seen["finish_reason"], seen["stop_reason"] = c["finish_reason"], c["stop_reason"]
    return choices


@pytest.mark.parametrize("echo", [False, True])
@pytest.mark.parametrize("ids", [False, True])
@pytest.mark.parametrize("logprobs", [False, True])
def test_a_streamed_completion_adds_up_to_the_whole_one(server, echo, ids, logprobs):
    """Two prompts, two choices each, stop strings (the engine holds back text that may
    start one, so some steps release a token but no text), logprobs and prompt logprobs or
    not, token ids or not: the chunks of each choice add up to the non-streamed choice, the
    prompt's parts come once, with its first chunk, and no chunk is empty."""
    ask = {"prompt": ["ab", "xyz"], "n": 2, "max_tokens": 12, "echo": echo, "stop": ["quick", "fox"],
           "return_token_ids": ids, **({"logprobs": 2, "prompt_logprobs": 1} if logprobs else {})}
    with server.http() as http:
        whole = http.post("/v1/completions", json=ask).json()["choices"]
        events = [e for e in sse_events(http.post("/v1/completions", json={**ask, "stream": True})) if e != "[DONE]"]
    assert [c["finish_reason"] for c in whole] == ["stop", "length", "stop", "stop"]
    streamed = added_up(events)
    assert sorted(streamed) == [c["index"] for c in whole] == [0, 1, 2, 3]
    for choice in whole:
        got = streamed[choice["index"]]
        assert (got["text"], got["finish_reason"], got["stop_reason"]) == (
            choice["text"], choice["finish_reason"], choice["stop_reason"])
        assert {k: got[k] for k in LOGPROB_LISTS} == (choice["logprobs"] or {k: [] for k in LOGPROB_LISTS})
        assert got["prompt_logprobs"] == [choice["prompt_logprobs"]] + [None] * (len(got["prompt_logprobs"]) - 1)
        if ids:
            assert got["token_ids"] == choice["token_ids"]
            assert got["prompt_token_ids"] == [choice["prompt_token_ids"]] + [None] * (len(got["prompt_token_ids"]) - 1)
        if logprobs:  # OpenAI's text_offset: where each token's text starts in the choice's text
            # (the tokens of a stop string, cut from the text, start at or after its end)
            lp = choice["logprobs"]
            for token, offset in zip(lp["tokens"], lp["text_offset"]):
                if offset < len(choice["text"]) and token != "<s>":
                    assert choice["text"][offset:offset + len(token)] == token


def test_each_choice_streams_all_its_text_whatever_the_others_hold_back(start_server):
    """The engine holds back one choice's text for a step (an incomplete character, what may
    start a stop string) while the other's goes on."""
    from tests.core.server.scripted_engine import ScriptedEngine

    live = start_server(ScriptedEngine(choices=[["Hel", "", "lo", ""], ["Wor", "ld", "!"]]))
    with live.http() as http:
        events = [e for e in sse_events(http.post("/v1/completions", json={"prompt": "a", "n": 2, "stream": True}))
                  if e != "[DONE]"]
    streamed = added_up(events)
    assert [(streamed[i]["text"], streamed[i]["finish_reason"]) for i in (0, 1)] == [("Hello", "stop"),
                                                                                     ("World!", "stop")]
