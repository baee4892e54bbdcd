"""use_beam_search on the embedded SmolLM2 through `fw serve`'s code path, the openai SDK
as the client: beams best first by vLLM's score, distinct, no worse than greedy, each
beam's logprob what the model gives the same tokens when it reads them as a prompt."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.slow

MODEL = "SmolLM2-135M-Instruct"
PROMPT = "The capital of France is"


def client(real_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{real_server.url}/v1", api_key="x", max_retries=0)


def test_beams_are_best_first_and_as_likely_as_the_model_says(real_server):
    api = client(real_server)
    result = api.completions.create(model=MODEL, prompt=PROMPT, max_tokens=6, n=3, logprobs=1, extra_body={
        "use_beam_search": True, "ignore_eos": True, "return_token_ids": True, "length_penalty": 1.0})
    choices = sorted(result.choices, key=lambda c: c.index)
    assert len({tuple(c.token_ids) for c in choices}) == 3
    prompt_ids = choices[0].prompt_token_ids
    cums = [sum(c.logprobs.token_logprobs) for c in choices]
    scores = [cum / (len(prompt_ids) + len(c.token_ids)) for cum, c in zip(cums, choices)]
    assert scores == sorted(scores, reverse=True)
    greedy = api.completions.create(model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0, logprobs=0,
                                    extra_body={"ignore_eos": True})
    assert cums[0] >= sum(greedy.choices[0].logprobs.token_logprobs) - 1e-3
    assert result.usage.completion_tokens == sum(len(c.token_ids) for c in choices)
    with real_server.http() as http:  # the model's own logprobs of each beam, read as a prompt
        for choice, cum in zip(choices, cums):
            body = http.post("/v1/completions", json={"prompt": prompt_ids + choice.token_ids, "max_tokens": 1,
                                                      "prompt_logprobs": 0}).json()
            positions = body["choices"][0]["prompt_logprobs"][len(prompt_ids):]
            read = sum(pos[str(token)]["logprob"] for pos, token in zip(positions, choice.token_ids))
            assert read == pytest.approx(cum, abs=0.05)


def test_chat_beams_stream_as_they_answer(real_server):
    api = client(real_server)
    messages = [{"role": "user", "content": "Name the capital city of France."}]
    extra = {"use_beam_search": True, "early_stopping": True, "length_penalty": 0.0}
    whole = api.chat.completions.create(model=MODEL, messages=messages, n=2, max_completion_tokens=12,
                                        extra_body=extra)
    assert "Paris" in whole.choices[0].message.content
    assert whole.choices[0].message.content != whole.choices[1].message.content
    texts = {0: "", 1: ""}
    for chunk in api.chat.completions.create(model=MODEL, messages=messages, n=2, max_completion_tokens=12,
                                             extra_body=extra, stream=True):
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {c.index: c.message.content for c in whole.choices}
