"""`fw run-batch` with the pooling routes: /v1/embeddings, /v1/score and /v1/rerank lines
through the real engine on all-MiniLM-L6-v2, sentence-transformers being the oracle."""

from __future__ import annotations

import numpy as np

from tests.plugins.commands.test_run_batch import CHAT, fw, line, read_records


def test_embedding_lines_on_all_minilm(minilm_dir, minilm_oracle, tmp_path):
    """Answered as `fw serve` would answer them, in input order."""
    texts = ["The quick brown fox jumps over the lazy dog.", "A man is eating food.", "hello"]
    lines = [line(f"emb-{i}", "/v1/embeddings", input=text, encoding_format="float") for i, text in enumerate(texts)]
    lines += [line("batch", "/v1/embeddings", input=texts), line("empty", "/v1/embeddings", input=[]),
              line("score", "/v1/score", text_1=texts[0], text_2=texts[1:]),
              line("rerank", "/v1/rerank", query=texts[1], documents=texts),
              line("chat", CHAT, messages=[{"role": "user", "content": "hi"}])]
    source, target = tmp_path / "batch.jsonl", tmp_path / "results.jsonl"
    source.write_text("\n".join(lines))
    result = fw("run-batch", "-i", str(source), "-o", str(target), "--model", str(minilm_dir), "--disable-log-stats")
    assert result.exit_code == 0, result.output
    records = {r["custom_id"]: r for r in read_records(target)}
    want = minilm_oracle.encode(texts)
    for i in range(3):
        got = np.asarray(records[f"emb-{i}"]["response"]["body"]["data"][0]["embedding"])
        assert float(np.dot(got, want[i])) >= 0.9999
    batch = records["batch"]["response"]["body"]
    assert [d["index"] for d in batch["data"]] == [0, 1, 2] and batch["object"] == "list"
    assert records["empty"]["error"]["code"] == "invalid_value" and records["empty"]["response"]["status_code"] == 400
    assert len(records["score"]["response"]["body"]["data"]) == 2
    assert records["rerank"]["response"]["body"]["results"][0]["index"] == 1
    assert records["chat"]["error"]["code"] == "not_supported"
