"""Logits processors over HTTP, with the official ``openai`` SDK against a real engine (a
tiny float32 checkpoint in an engine core process, so the arguments also cross the
engine's messages): ``vllm_xargs`` in ``extra_body`` steers the request that sends it, the
others answer what the offline engine answers, bad arguments and per-request processors
the server does not allow are 400s naming the field (and the server keeps serving), and an
unknown --logits-processors stops ``fw serve`` before the model loads."""

from __future__ import annotations

import openai
import pytest
from fw import LLM, SamplingParams

from tests.conftest import run_fw
from tests.core.server.conftest import real_engine_server

TEMPLATE = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
PROMPT = "the cat sat on the mat and the cat"
GREEDY = {"max_tokens": 8, "temperature": 0}
AS_IDS = {"ignore_eos": True, "return_tokens_as_token_ids": True}


def _ids(logprobs_tokens: list[str]) -> list[int]:
    return [int(t.removeprefix("token_id:")) for t in logprobs_tokens]


def test_vllm_xargs_steer_their_request_and_bad_ones_are_400s(tiny_llama):
    plain = LLM(str(tiny_llama), dtype="float32")
    try:
        [expected] = plain.generate([PROMPT], SamplingParams(**GREEDY, ignore_eos=True), use_tqdm=False)
    finally:
        plain.engine.shutdown()
    expected = list(expected.outputs[0].token_ids)
    with real_engine_server(model=str(tiny_llama), dtype="float32", logits_processors=["target_token"],
                            chat_template=TEMPLATE, max_model_len=256) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
        model = client.models.list().data[0].id
        steered = client.completions.create(model=model, prompt=PROMPT, logprobs=0, **GREEDY,
                                            extra_body={**AS_IDS, "vllm_xargs": {"target_token": 7}})
        assert _ids(steered.choices[0].logprobs.tokens) == [7] * 8
        alone = client.completions.create(model=model, prompt=PROMPT, logprobs=0, **GREEDY, extra_body=AS_IDS)
        assert _ids(alone.choices[0].logprobs.tokens) == expected
        chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}],
                                              logprobs=True, **GREEDY,
                                              extra_body={**AS_IDS, "vllm_xargs": {"target_token": 12}})
        assert [_ids([c.token])[0] for c in chat.choices[0].logprobs.content] == [12] * 8

        refusals = [
            ({"vllm_xargs": {"target_token": 10**9}}, "vllm_xargs", "target_token must be a token id"),
            ({"vllm_xargs": {"target": 3}}, "vllm_xargs", "no logits processor reads 'target'"),
            ({"logits_processors": ["fw_builtins.logits_processors.target_token.TargetTokenLogitsProcessor"]},
             "logits_processors", "--logits-processor-pattern"),
            ({"logits_processors": [{"qualname": "a.B", "kwargs": {"x": 1}}]}, "logits_processors",
             "constructor args/kwargs are not supported"),
        ]
        for extra, param, reason in refusals:
            with pytest.raises(openai.BadRequestError) as info:
                client.completions.create(model=model, prompt=PROMPT, **GREEDY, extra_body=extra)
            error = info.value.body
            assert param in (error.get("param") or ""), error
            assert reason in error["message"], error
        again = client.completions.create(model=model, prompt=PROMPT, logprobs=0, **GREEDY, extra_body=AS_IDS)
        assert _ids(again.choices[0].logprobs.tokens) == expected  # still serving, unchanged


def test_a_request_may_name_a_processor_the_pattern_allows_over_http(tiny_llama):
    with real_engine_server(model=str(tiny_llama), dtype="float32", max_model_len=256,
                            logits_processor_pattern=r"fw_builtins\.logits_processors\.",
                            disable_frontend_multiprocessing=True) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
        model = client.models.list().data[0].id
        named = {"logits_processors": [{"qualname": "fw_builtins.logits_processors.target_token."
                                                    "TargetTokenLogitsProcessor"}],
                 "vllm_xargs": {"target_token": 5}}
        out = client.completions.create(model=model, prompt=PROMPT, logprobs=0, **GREEDY,
                                        extra_body={**AS_IDS, **named})
        assert _ids(out.choices[0].logprobs.tokens) == [5] * 8
        with pytest.raises(openai.BadRequestError) as info:
            client.completions.create(model=model, prompt=PROMPT, **GREEDY,
                                      extra_body={"logits_processors": ["os.system"]})
        assert info.value.body["param"] == "logits_processors"
        assert "'os.system' is not allowed by this server" in info.value.body["message"]


def test_an_unknown_logits_processor_stops_fw_serve_before_the_load(tmp_path):
    result = run_fw("serve", str(tmp_path / "no-model"), "--logits-processors", "no_such_processor", timeout=60)
    assert result.returncode != 0
    assert ("Error: --logits-processors: unknown logits processor 'no_such_processor'; available: target_token"
            in result.stderr)
    assert "Traceback" not in result.stderr
