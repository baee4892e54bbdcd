"""all-MiniLM-L6-v2 served by `fw serve` (engine core process, fw's default dtype), against
sentence-transformers: the official openai client, base64 equal to float, the score and
rerank endpoints, per-token states, concurrent requests, and the errors a user meets."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import openai
import pytest

from tests.core.server.conftest import real_engine_server

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "A man is eating food.", "hello",
             "Embeddings turn text into vectors that can be compared with cosine similarity."]
LONG = " ".join(["The weather is nice and warm this week, and the moon has many craters."] * 30)


@pytest.fixture(scope="module")
def minilm_server(minilm_dir):
    with real_engine_server(model=str(minilm_dir), served_model_name=["all-MiniLM-L6-v2"]) as live:
        yield live


def client(live) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0)


def cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_the_openai_client_embeds_as_sentence_transformers_does(minilm_server, minilm_oracle):
    result = client(minilm_server).embeddings.create(model="all-MiniLM-L6-v2", input=SENTENCES)
    got = np.array([d.embedding for d in result.data])
    assert got.shape == (4, 384) and result.model == "all-MiniLM-L6-v2"
    assert cosines(got, minilm_oracle.encode(SENTENCES)).min() >= 0.9999
    tokens = sum(len(ids) for ids in minilm_oracle.tokenizer(SENTENCES)["input_ids"])
    assert result.usage.prompt_tokens == result.usage.total_tokens == tokens


def test_base64_equals_float(minilm_server):
    with minilm_server.http() as http:
        floats = http.post("/v1/embeddings", json={"input": SENTENCES, "encoding_format": "float"}).json()
        b64 = http.post("/v1/embeddings", json={"input": SENTENCES, "encoding_format": "base64"}).json()
    for f, b in zip(floats["data"], b64["data"]):
        np.testing.assert_array_equal(np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4"),
                                      np.asarray(f["embedding"], dtype=np.float32))


def test_token_ids_and_truncation(minilm_server, minilm_oracle):
    ids = minilm_oracle.tokenizer(SENTENCES[:2])["input_ids"]
    result = client(minilm_server).embeddings.create(model="all-MiniLM-L6-v2", input=ids)
    assert cosines([d.embedding for d in result.data], minilm_oracle.encode(SENTENCES[:2])).min() >= 0.9999
    with minilm_server.http() as http:
        refused = http.post("/v1/embeddings", json={"input": LONG})
        cut = http.post("/v1/embeddings", json={"input": LONG, "truncate_prompt_tokens": 256}).json()
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 256 tokens" in refused.json()["error"]["message"]
    # sentence-transformers cuts at max_seq_length 256, keeping the start: the same tokens
    assert cut["usage"]["prompt_tokens"] == 256
    assert cosines(cut["data"][0]["embedding"], minilm_oracle.encode(LONG)) >= 0.9999


def test_concurrent_requests_equal_one_at_a_time(minilm_server):
    alone = client(minilm_server).embeddings.create(model="all-MiniLM-L6-v2", input=SENTENCES[0]).data[0].embedding

    async def many():
        async_client = openai.AsyncOpenAI(base_url=f"{minilm_server.url}/v1", api_key="x", max_retries=0)
        calls = [async_client.embeddings.create(model="all-MiniLM-L6-v2", input=SENTENCES * 8) for _ in range(4)]
        return await asyncio.gather(*calls)

    for result in asyncio.run(many()):
        for i in range(0, 32, 4):
            assert cosines(result.data[i].embedding, alone) >= 0.99999


def test_score_and_rerank_are_cosine_similarities(minilm_server, minilm_oracle):
    query, documents = "A man is eating pasta.", ["A man is eating food.", "A monkey plays the drums.", "hello"]
    vectors = minilm_oracle.encode([query, *documents])
    want = cosines(vectors[:1], vectors[1:])
    with minilm_server.http() as http:
        scores = http.post("/score", json={"text_1": query, "text_2": documents}).json()
        ranked = http.post("/v1/rerank", json={"query": query, "documents": documents, "top_n": 2}).json()
    # bf16: each embedding is within 2e-5 of cosine of the oracle's, so a score within ~1e-3
    np.testing.assert_allclose([d["score"] for d in scores["data"]], want, atol=2e-3)
    assert [r["index"] for r in ranked["results"]] == list(np.argsort(-want)[:2])
    assert ranked["results"][0]["document"]["text"] == "A man is eating food."


def test_pooling_returns_every_token_state(minilm_server, minilm_oracle):
    with minilm_server.http() as http:
        result = http.post("/pooling", json={"input": SENTENCES[1]}).json()
    states = np.asarray(result["data"][0]["data"])
    want = minilm_oracle.encode(SENTENCES[1], output_value="token_embeddings").numpy()
    assert states.shape == want.shape and cosines(states, want).min() >= 0.9999


def test_what_an_embedding_model_does_not_serve_is_a_400(minilm_server):
    with minilm_server.http() as http:
        chat = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        classify = http.post("/classify", json={"input": "hi"})
        dimensions = http.post("/v1/embeddings", json={"input": "hi", "dimensions": 128})
        empty = http.post("/v1/embeddings", json={"input": []})
        healthy = http.get("/health")
    assert chat.status_code == 400 and "served by the generate runner" in chat.json()["error"]["message"]
    assert classify.status_code == 400 and "needs a classification model" in classify.json()["error"]["message"]
    assert dimensions.status_code == 400 and dimensions.json()["error"]["param"] == "dimensions"
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "input"
    assert healthy.status_code == 200
