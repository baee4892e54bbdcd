"""`fw serve`'s code path end to end on the real engine and the embedded SmolLM2."""

from __future__ import annotations

import time

import openai
import pytest

from tests.core.server.helpers import metric

pytestmark = pytest.mark.slow

#: "What is the capital of France?" starts with a near tie in float32 (0.08 nats), which bf16
#: may take either way (tests/e2e/test_smollm2.py); this phrasing's first token is clear
QUESTION = [{"role": "user", "content": "Name the capital city of France."}]


def test_chat_stream_and_full_answer_agree(real_server):
    client = openai.OpenAI(base_url=f"{real_server.url}/v1", api_key="x", max_retries=0)
    full = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=QUESTION, max_tokens=16,
                                          temperature=0)
    assert "Paris" in full.choices[0].message.content
    # The stream is compared with a non-streamed answer served the same way (over the
    # prompt's cached prefix): whether a cache hit changes the int4 default's greedy text is
    # issue 22's (tests/e2e/test_batch_invariance_smollm2.py), not a streaming question.
    cached = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=QUESTION, max_tokens=16,
                                            temperature=0)
    streamed = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=QUESTION, max_tokens=16,
                                              temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == cached.choices[0].message.content


def test_completion_echo_and_logprobs(real_server):
    client = openai.OpenAI(base_url=f"{real_server.url}/v1", api_key="x", max_retries=0)
    result = client.completions.create(model="SmolLM2-135M-Instruct", prompt="The capital of France is",
                                       max_tokens=4, temperature=0, logprobs=2, echo=True)
    choice = result.choices[0]
    assert choice.text.startswith("The capital of France is")
    assert "".join(choice.logprobs.tokens) == choice.text
    assert result.usage.total_tokens == result.usage.prompt_tokens + 4


def test_disconnect_frees_the_request(real_server):
    with real_server.http() as http:
        with http.stream("POST", "/v1/completions", json={
                "prompt": "Count from one to a thousand:", "max_tokens": 900, "stream": True,
                "ignore_eos": True}) as response:
            assert next(response.iter_lines()).startswith("data: ")
    deadline = time.monotonic() + 30
    while metric(real_server, "fw:num_requests_running") or metric(real_server, "fw:kv_cache_usage_perc"):
        assert time.monotonic() < deadline, "the request kept running after the client left"
        time.sleep(0.1)
    assert metric(real_server, "fw:request_success_total", finished_reason="abort") >= 1
