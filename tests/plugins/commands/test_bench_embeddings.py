"""`fw bench serve --endpoint /v1/embeddings`: prompts embedded several per request against
fw's own server (over the fake engine), inputs per second and request latency reported."""

from __future__ import annotations

import json

import pytest

from fw.pooling.setup import PoolingSetup
from tests.core.server.conftest import LiveServer
from tests.core.server.fake_engine import FakeEngine
from tests.core.server.helpers import serve_config
from tests.plugins.commands.test_bench_serve import bench, table

EMBED = PoolingSetup(tasks=["embed", "encode"], poolers={"embed": "MEAN", "encode": "ALL"}, hidden_size=8)


@pytest.fixture
def embedding_server():
    engine = FakeEngine(pooling=EMBED)
    live = LiveServer(engine, serve_config()).start()
    yield live
    live.stop()


def test_embeddings_mode_groups_prompts_and_reports_inputs_per_second(embedding_server, tmp_path):
    dataset = tmp_path / "sentences.jsonl"
    dataset.write_text("".join(json.dumps({"prompt": f"sentence number {i}"}) + "\n" for i in range(10)))
    result = bench("--base-url", embedding_server.url, "--endpoint", "/v1/embeddings", "--dataset-name", "custom",
                   "--dataset-path", str(dataset), "--num-prompts", "10", "--inputs-per-request", "4",
                   "--max-concurrency", "2", "--save-result", "--result-dir", str(tmp_path), "--result-filename",
                   "e.json")
    assert result.exit_code == 0, result.output
    rows = table(result.stdout)
    assert rows["Successful requests"] == 3 and rows["Inputs embedded"] == 10  # 4 + 4 + 2
    assert rows["Total generated tokens"] == 0 and "Mean E2EL (ms)" in rows and "Mean TPOT (ms)" not in rows
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["embedding_throughput"] == pytest.approx(rows["Embedding throughput (inputs/s)"], rel=1e-2)
    assert saved["inputs_per_request"] == 4 and saved["endpoint"] == "/v1/embeddings"
    engine = embedding_server.engine
    prompts = [p["prompt"] for _, p, _ in engine.requests]  # the first goes alone first, as a probe
    assert len(prompts) == 11 and set(prompts) == {f"sentence number {i}" for i in range(10)}
    assert saved["total_input_tokens"] == sum(len(engine.tokenizer(f"sentence number {i}")["input_ids"])
                                              for i in range(10))


def test_a_server_that_does_not_embed_stops_the_benchmark_at_once(tmp_path):
    dataset = tmp_path / "sentences.jsonl"
    dataset.write_text(json.dumps({"prompt": "a sentence"}) + "\n")
    generative = LiveServer(FakeEngine(), serve_config()).start()
    try:
        result = bench("--base-url", generative.url, "--endpoint", "/v1/embeddings", "--dataset-name", "custom",
                       "--dataset-path", str(dataset), "--num-prompts", "1")
    finally:
        generative.stop()
    assert result.exit_code != 0 and "the first test request" in result.output
    assert "served by the pooling runner" in result.output and "Traceback" not in result.output
