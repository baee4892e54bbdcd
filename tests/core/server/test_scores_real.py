"""Cross-encoders and classifiers served for real (tiny random BERT-family checkpoints, the
in-thread engine): /score and /rerank against sentence-transformers' CrossEncoder, /classify
against transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.checkpoints import encoder_tokenizer
from tests.core.server.conftest import real_engine_server

QUERY = "What is the capital of France?"
DOCUMENTS = ["The capital of France is Paris.", "Berlin is the capital of Germany.", "Water boils at 100 degrees."]


@pytest.mark.parametrize("architecture", ["BertForSequenceClassification", "XLMRobertaForSequenceClassification"])
def test_a_cross_encoder_scores_and_reranks_as_sentence_transformers(tiny_checkpoint_factory, architecture):
    st = pytest.importorskip("sentence_transformers")
    path = tiny_checkpoint_factory(architecture, num_labels=1)
    want = st.CrossEncoder(str(path), device="cpu").predict([(QUERY, d) for d in DOCUMENTS])
    assert want.min() > 0 and want.max() < 1  # CrossEncoder applies the sigmoid too
    with real_engine_server(model=str(path), dtype="float32", disable_frontend_multiprocessing=True) as live:
        with live.http() as http:
            scores = http.post("/score", json={"text_1": QUERY, "text_2": DOCUMENTS}).json()
            ranked = http.post("/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS}).json()
            embeddings = http.post("/v1/embeddings", json={"input": "x"})
    np.testing.assert_allclose([d["score"] for d in scores["data"]], want, atol=1e-5)
    assert [r["index"] for r in ranked["results"]] == list(np.argsort(-want))
    assert embeddings.status_code == 400 and "needs an embedding model" in embeddings.text


def test_classify_equals_transformers(tiny_checkpoint_factory):
    import transformers

    path = tiny_checkpoint_factory("BertForSequenceClassification", num_labels=3,
                                   id2label={0: "negative", 1: "neutral", 2: "positive"},
                                   label2id={"negative": 0, "neutral": 1, "positive": 2})
    model = transformers.BertForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        want = torch.cat([model(**encoder_tokenizer()(d, return_tensors="pt")).logits for d in DOCUMENTS]).softmax(-1)
    with real_engine_server(model=str(path), dtype="float32", disable_frontend_multiprocessing=True) as live:
        with live.http() as http:
            result = http.post("/classify", json={"input": DOCUMENTS}).json()
            score = http.post("/score", json={"text_1": "a", "text_2": "b"})
    for row, data in zip(want, result["data"]):
        np.testing.assert_allclose(data["probs"], row.numpy(), atol=1e-6)
        assert data["label"] == ["negative", "neutral", "positive"][int(row.argmax())] and data["num_classes"] == 3
    assert score.status_code == 400 and "needs a cross-encoder" in score.text
