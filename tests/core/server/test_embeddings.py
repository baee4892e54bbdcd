"""/v1/embeddings, /pooling and /classify over HTTP (the fake engine pools through the real
admission step): the official openai client, every input shape, both encodings, and every
error in the API's shape."""

from __future__ import annotations

import base64
from dataclasses import replace

import numpy as np
import pytest

from fw.pooling.params import PoolingParams
from fw.pooling.setup import PoolingSetup
from tests.core.server.fake_engine import FakeEngine, fake_pooled
from tests.core.server.helpers import metric

EMBED = PoolingSetup(tasks=["embed", "encode"], poolers={"embed": "MEAN", "encode": "ALL"}, hidden_size=8)
CLASSIFIER = PoolingSetup(tasks=["classify", "encode"], poolers={"classify": "CLS", "encode": "ALL"},
                          hidden_size=8, labels=["negative", "neutral", "positive"])
TEXTS = ["the quick brown fox", "a lazy dog", "x"]


def pooling_engine(setup: PoolingSetup = EMBED, **kwargs) -> FakeEngine:
    return FakeEngine(pooling=setup, **kwargs)


def expected(engine: FakeEngine, text_or_ids, task: str = "embed", **params) -> np.ndarray:
    ids = engine.tokenizer(text_or_ids)["input_ids"] if isinstance(text_or_ids, str) else text_or_ids
    _, ids, resolved, types = engine.admission.admit_pooling(None, ids, PoolingParams(task, **params))
    return fake_pooled(engine.model_info.pooling, ids, types, resolved)


def test_the_openai_client_gets_each_embedding_in_order(start_server):
    engine = pooling_engine()
    live = start_server(engine)
    result = live.openai().embeddings.create(model="fake-model", input=TEXTS)  # base64 on the wire
    assert [d.index for d in result.data] == [0, 1, 2] and result.object == "list"
    for text, data in zip(TEXTS, result.data):
        np.testing.assert_allclose(data.embedding, expected(engine, text), rtol=1e-6)
        assert abs(np.linalg.norm(data.embedding) - 1) < 1e-6
    prompt_tokens = sum(len(engine.tokenizer(t)["input_ids"]) for t in TEXTS)
    assert result.usage.prompt_tokens == result.usage.total_tokens == prompt_tokens
    assert metric(live, "fw:prompt_tokens_total") == prompt_tokens
    assert metric(live, "fw:request_success_total", finished_reason="stop") == 3


def test_base64_is_the_float32_bytes_of_the_floats(start_server):
    live = start_server(pooling_engine())
    with live.http() as http:
        floats = http.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "float"}).json()
        b64 = http.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "base64"}).json()
    for f, b in zip(floats["data"], b64["data"]):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(decoded, np.asarray(f["embedding"], dtype=np.float32))


@pytest.mark.parametrize("value, count", [("one text", 1), (["a", "bc"], 2), ([5, 6, 7], 1), ([[5, 6], [7]], 2)])
def test_every_input_shape(start_server, value, count):
    engine = pooling_engine()
    data = start_server(engine).openai().embeddings.create(model="fake-model", input=value,
                                                           encoding_format="float").data
    items = [value] if isinstance(value, str) or isinstance(value[0], int) else value
    assert len(data) == count
    for item, got in zip(items, data):
        np.testing.assert_allclose(got.embedding, expected(engine, item), rtol=1e-6)


def test_dimensions_on_a_matryoshka_model_and_normalize(start_server):
    engine = pooling_engine(replace(EMBED, matryoshka=True))
    with start_server(engine).http() as http:
        short = http.post("/v1/embeddings", json={"input": "abc", "dimensions": 3}).json()["data"][0]["embedding"]
        raw = http.post("/v1/embeddings", json={"input": "abc", "normalize": False}).json()["data"][0]["embedding"]
        too_many = http.post("/v1/embeddings", json={"input": "abc", "dimensions": 9})
    np.testing.assert_allclose(short, expected(engine, "abc", dimensions=3), rtol=1e-6)
    assert len(short) == 3 and abs(np.linalg.norm(short) - 1) < 1e-6
    np.testing.assert_allclose(raw, expected(engine, "abc", normalize=False), rtol=1e-6)
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "dimensions"
    assert "have 8 dimensions; 9 is more" in too_many.json()["error"]["message"]


@pytest.mark.parametrize("body, param, message", [
    ({"input": []}, "input", "must not be empty"),
    ({"input": ""}, "input", "input is empty"),
    ({"input": ["a", ""]}, "input", "input[1] is empty"),
    ({"input": [[]]}, "input", "is empty"),
    ({"input": "a" * 300}, "input", "maximum context length is 256 tokens, but the input has 301 tokens"),
    ({"input": [999999]}, "input", "outside the vocabulary"),
    ({"input": "a", "dimensions": 4}, "dimensions", "does not support Matryoshka"),
    ({"input": "a", "dimensions": 0}, "dimensions", "must be at least 1"),
    ({"input": "a", "encoding_format": "hex"}, "encoding_format", "'float' or 'base64'"),
    ({"input": "a", "truncate_prompt_tokens": -2}, "truncate_prompt_tokens", "greater than or equal to -1"),
    ({"input": "a", "model": "other"}, "model", "does not exist"),
    ({"input": "a", "temperature": 1}, "temperature", "unrecognized request argument"),
])
def test_bad_requests_are_400s_naming_the_parameter(start_server, body, param, message):
    live = start_server(pooling_engine())
    with live.http() as http:
        response = http.post("/v1/embeddings", json=body)
        assert http.post("/v1/embeddings", json={"input": "still serving"}).status_code == 200
    assert response.status_code in (400, 404), response.text
    error = response.json()["error"]
    assert error["param"] == param and message in error["message"], error


def test_truncate_prompt_tokens_keeps_the_start_of_text_and_the_end_of_ids(start_server):
    engine = pooling_engine()
    with start_server(engine).http() as http:
        text = http.post("/v1/embeddings", json={"input": "a" * 300, "truncate_prompt_tokens": 10}).json()
        ids = http.post("/v1/embeddings", json={"input": [5] * 150 + [6] * 150, "truncate_prompt_tokens": -1}).json()
    assert text["usage"]["prompt_tokens"] == 10 and ids["usage"]["prompt_tokens"] == 256
    np.testing.assert_allclose(text["data"][0]["embedding"], expected(engine, engine.tokenizer("a" * 300)[
        "input_ids"][:10]), rtol=1e-6)
    np.testing.assert_allclose(ids["data"][0]["embedding"], expected(engine, [5] * 106 + [6] * 150), rtol=1e-6)


def test_endpoints_the_runner_does_not_serve_say_which_runner_does(start_server):
    generative = start_server(FakeEngine())
    with generative.http() as http:
        response = http.post("/v1/embeddings", json={"input": "a"})
    assert response.status_code == 400
    assert "served by the pooling runner, but this model runs the generate runner" in response.text
    assert "--enable-embeddings" in response.text
    embedder = start_server(pooling_engine())
    with embedder.http() as http:
        chat = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        completion = http.post("/v1/completions", json={"prompt": "hi"})
        classify = http.post("/classify", json={"input": "a"})
    for response in (chat, completion):
        assert response.status_code == 400 and "served by the generate runner" in response.text
        assert "runs the pooling runner" in response.text
    assert classify.status_code == 400 and "needs a classification model" in classify.text
    with start_server(pooling_engine(CLASSIFIER)).http() as http:
        embeddings = http.post("/v1/embeddings", json={"input": "a"})
    assert embeddings.status_code == 400 and "needs an embedding model" in embeddings.text


def test_pooling_returns_per_token_states_by_default(start_server):
    engine = pooling_engine()
    with start_server(engine).http() as http:
        tokens = http.post("/pooling", json={"input": "abc"}).json()
        vector = http.post("/pooling", json={"input": ["abc"], "task": "embed", "encoding_format": "base64"}).json()
        bad = http.post("/pooling", json={"input": "abc", "task": "classify"})
    assert tokens["data"][0]["object"] == "pooling"
    np.testing.assert_allclose(tokens["data"][0]["data"], expected(engine, "abc", "encode"), rtol=1e-6)
    decoded = np.frombuffer(base64.b64decode(vector["data"][0]["data"]), dtype="<f4")
    np.testing.assert_allclose(decoded, expected(engine, "abc"), rtol=1e-6)
    assert bad.status_code == 400 and "/pooling: needs a classification model" in bad.text


def test_classify_gives_the_label_and_probabilities(start_server):
    engine = pooling_engine(CLASSIFIER)
    with start_server(engine).http() as http:
        result = http.post("/classify", json={"input": TEXTS}).json()
        logits = http.post("/classify", json={"input": "abc", "activation": False}).json()
    assert [d["index"] for d in result["data"]] == [0, 1, 2]
    for text, data in zip(TEXTS, result["data"]):
        probs = expected(engine, text, "classify")
        np.testing.assert_allclose(data["probs"], probs, rtol=1e-6)
        assert data["label"] == CLASSIFIER.labels[int(np.argmax(probs))] and data["num_classes"] == 3
    np.testing.assert_allclose(logits["data"][0]["probs"], expected(engine, "abc", "classify", activation=False),
                               rtol=1e-6)


def test_a_request_of_many_inputs_never_fills_the_engine_queue(start_server, monkeypatch):
    """OpenAI allows 2,048 inputs per request: they enter the engine a bounded number at a time."""
    import fw.server.pooling

    monkeypatch.setattr(fw.server.pooling, "MAX_IN_FLIGHT", 4)
    engine = pooling_engine(queue_limit=4, token_delay=0.01)
    with start_server(engine).http() as http:
        result = http.post("/v1/embeddings", json={"input": [f"text {i}" for i in range(40)]})
    assert result.status_code == 200 and len(result.json()["data"]) == 40
