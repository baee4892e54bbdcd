"""/score, /v1/score and /rerank, /v1/rerank, /v2/rerank over HTTP (fake engine): cosine
similarity for an embedding model, a cross-encoder's score for a one-label classifier,
vLLM's pairing rules, Jina/Cohere's rerank shape, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from fw.pooling.params import PoolingParams
from fw.pooling.setup import PoolingSetup
from tests.core.server.fake_engine import FakeEngine, fake_pooled
from tests.core.server.test_embeddings import CLASSIFIER, EMBED, expected

CROSS_ENCODER = PoolingSetup(tasks=["classify", "encode"], poolers={"classify": "CLS", "encode": "ALL"},
                             hidden_size=8, labels=["LABEL_0"])
DOCS = ["the lazy dog sleeps", "a quick brown fox", "foxes are quick", "paris"]


def cosine(a, b) -> float:
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def cross_score(engine: FakeEngine, first: str, second: str) -> float:
    encoded = engine.tokenizer(first, second)
    _, ids, params, types = engine.admission.admit_pooling(None, encoded["input_ids"], PoolingParams("classify"),
                                                           encoded.get("token_type_ids"))
    return float(fake_pooled(engine.model_info.pooling, ids, types, params)[0])


@pytest.mark.parametrize("path", ["/score", "/v1/score"])
def test_an_embedding_model_scores_by_cosine_similarity(start_server, path):
    engine = FakeEngine(pooling=EMBED)
    with start_server(engine).http() as http:
        one_to_many = http.post(path, json={"text_1": "a fox", "text_2": DOCS}).json()
        pairwise = http.post(path, json={"text_1": ["a fox", "a dog"], "text_2": ["a fox", "a cat"]}).json()
    assert one_to_many["object"] == "list" and [d["index"] for d in one_to_many["data"]] == [0, 1, 2, 3]
    for doc, data in zip(DOCS, one_to_many["data"]):
        assert data["object"] == "score"
        assert data["score"] == pytest.approx(cosine(expected(engine, "a fox"), expected(engine, doc)), abs=1e-6)
    assert pairwise["data"][0]["score"] == pytest.approx(1.0, abs=1e-6)
    assert pairwise["data"][1]["score"] == pytest.approx(
        cosine(expected(engine, "a dog"), expected(engine, "a cat")), abs=1e-6)
    texts = ["a fox", *DOCS]  # each distinct text is embedded once
    assert one_to_many["usage"]["prompt_tokens"] == sum(len(engine.tokenizer(t)["input_ids"]) for t in texts)


def test_a_cross_encoder_reads_each_pair_together(start_server):
    engine = FakeEngine(pooling=CROSS_ENCODER)
    with start_server(engine).http() as http:
        result = http.post("/score", json={"text_1": "a fox", "text_2": DOCS[:2]}).json()
    for doc, data in zip(DOCS, result["data"]):
        assert data["score"] == pytest.approx(cross_score(engine, "a fox", doc), abs=1e-6)
        assert 0 < data["score"] < 1  # the sigmoid of the one logit


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank"])
def test_rerank_orders_the_documents_best_first(start_server, path):
    engine = FakeEngine(pooling=CROSS_ENCODER)
    with start_server(engine).http() as http:
        ranked = http.post(path, json={"query": "a fox", "documents": DOCS}).json()
        top = http.post(path, json={"query": "a fox", "documents": DOCS, "top_n": 2,
                                    "return_documents": False}).json()
    scores = [cross_score(engine, "a fox", d) for d in DOCS]
    order = sorted(range(len(DOCS)), key=lambda i: -scores[i])
    assert [r["index"] for r in ranked["results"]] == order
    for result in ranked["results"]:
        assert result["document"] == {"text": DOCS[result["index"]]}
        assert result["relevance_score"] == pytest.approx(scores[result["index"]], abs=1e-6)
    assert [r["index"] for r in top["results"]] == order[:2] and "document" not in top["results"][0]
    assert ranked["usage"]["total_tokens"] > 0 and ranked["id"].startswith("rerank-")


@pytest.mark.parametrize("path, body, param, message", [
    ("/score", {"text_1": ["a", "b"], "text_2": ["c", "d", "e"]}, "text_2", "text_1 has 2 texts and text_2 3"),
    ("/score", {"text_1": [], "text_2": "c"}, "text_1", "must not be empty"),
    ("/score", {"text_1": "a", "text_2": ["c", ""]}, "text_2", "holds an empty text"),
    ("/score", {"text_1": "a", "text_2": "b " * 200}, "text_2", "maximum context length is 256 tokens"),
    ("/rerank", {"query": "a", "documents": []}, "documents", "must not be empty"),
    ("/rerank", {"query": "", "documents": ["b"]}, "query", "must not be empty"),
    ("/rerank", {"query": "a", "documents": ["b"], "top_n": -1}, "top_n", "greater than or equal to 0"),
    ("/v2/rerank", {"query": "a", "documents": ["b " * 200]}, "documents", "maximum context length is 256"),
])
def test_bad_requests_name_the_parameter(start_server, path, body, param, message):
    with start_server(FakeEngine(pooling=EMBED)).http() as http:
        response = http.post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param and message in response.json()["error"]["message"]


def test_models_that_cannot_score_say_what_can(start_server):
    with start_server(FakeEngine(pooling=CLASSIFIER)).http() as http:
        classifier = http.post("/score", json={"text_1": "a", "text_2": "b"})
    assert classifier.status_code == 400
    assert "/score: needs a cross-encoder (a classifier with one label) or an embedding model" in classifier.text
    with start_server(FakeEngine()).http() as http:
        generative = http.post("/rerank", json={"query": "a", "documents": ["b"]})
    assert generative.status_code == 400 and "runs the generate runner" in generative.text
