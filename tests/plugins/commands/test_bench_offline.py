"""`fw bench latency`, `fw bench throughput` and benchmarks/offline.py on a tiny random
checkpoint: the printed figures, the JSON file, engine options passing through, the
transformers baseline and one-line errors. Sizes are tiny; only the logic is checked."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from fw.cli.main import cli

from tests.benchmark_scripts import load_benchmark

THROUGHPUT = re.compile(r"^Throughput: ([\d.]+) requests/s, ([\d.]+) total tokens/s, ([\d.]+) output tokens/s$", re.M)


def bench(*args: str):
    return CliRunner().invoke(cli, ["bench", *args], prog_name="fw")


def figure(output: str, label: str) -> float:
    match = re.search(rf"^{re.escape(label)}:\s+([\d.]+)", output, re.M)
    assert match, f"no {label!r} line in:\n{output}"
    return float(match.group(1))


@pytest.fixture
def spy_engine(monkeypatch):
    """Records the EngineConfig each benchmark builds its engine from, and the engine."""
    from fw.engine.llm_engine import LLMEngine

    built = []
    original = LLMEngine.from_config.__func__

    def from_config(cls, config):
        engine = original(cls, config)
        built.append((config, engine))
        return engine

    monkeypatch.setattr(LLMEngine, "from_config", classmethod(from_config))
    return built


def test_latency_prints_percentiles_and_writes_them(tiny_llama, tmp_path):
    path = tmp_path / "latency.json"
    result = bench("latency", "--model", str(tiny_llama), "--input-len", "8", "--output-len", "4",
                   "--batch-size", "2", "--n", "2", "--num-iters-warmup", "1", "--num-iters", "3",
                   "--output-json", str(path))
    assert result.exit_code == 0, result.output
    average = figure(result.stdout, "Avg latency")
    percentiles = [figure(result.stdout, f"{p}% percentile latency") for p in (10, 25, 50, 75, 90, 99)]
    assert average > 0 and percentiles == sorted(percentiles) and percentiles[0] > 0
    assert "(batch 2 x n 2 x 4 tokens" in result.stdout
    saved = json.loads(path.read_text())
    assert len(saved["latencies"]) == 3
    assert round(saved["avg_latency"], 4) == average
    assert [round(saved["percentiles"][str(p)], 4) for p in (10, 25, 50, 75, 90, 99)] == percentiles
    assert saved["output_tokens_per_second"] == pytest.approx(2 * 2 * 4 / saved["avg_latency"])


def test_throughput_figures_json_and_engine_options(tiny_llama, tmp_path, spy_engine):
    path = tmp_path / "out" / "throughput.json"
    # 10 prompts through one sequence slot: all are queued and run in turn
    result = bench("throughput", "--model", str(tiny_llama), "--num-prompts", "10", "--input-len", "10",
                   "--output-len", "2", "--max-num-seqs", "1", "--dtype", "float32", "--no-enable-prefix-caching",
                   "--output-json", str(path))
    assert result.exit_code == 0, result.output
    (config, engine), = spy_engine
    assert config.scheduler.max_num_seqs == 1 and not config.cache.enable_prefix_caching
    assert str(engine.loaded.dtype) == "torch.float32"
    requests, total, output = map(float, THROUGHPUT.search(result.stdout).groups())
    assert figure(result.stdout, "Total num prompt tokens") == 100
    assert figure(result.stdout, "Total num output tokens") == 20
    saved = json.loads(path.read_text())
    assert saved["num_requests"] == 10 and saved["total_num_tokens"] == 120
    assert requests > 0 and output > 0
    assert (round(saved["requests_per_second"], 2), round(saved["tokens_per_second"], 2),
            round(saved["output_tokens_per_second"], 2)) == (requests, total, output)
    assert saved["tokens_per_second"] == pytest.approx(120 / saved["elapsed_time"])


def test_throughput_random_range_and_sharegpt(tiny_llama, tmp_path):
    result = bench("throughput", "--model", str(tiny_llama), "--num-prompts", "6", "--input-len", "10",
                   "--output-len", "4", "--random-range-ratio", "0.5", "--disable-detokenize")
    assert result.exit_code == 0, result.output
    assert 6 * 5 <= figure(result.stdout, "Total num prompt tokens") <= 6 * 15
    assert 6 * 2 <= figure(result.stdout, "Total num output tokens") <= 6 * 6

    dataset = tmp_path / "sharegpt.json"
    dataset.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": f"Tell me a story about robot number {i}, please."},
                           {"from": "gpt", "value": "Once upon a time there was a little robot."}]}
        for i in range(5)]))
    result = bench("throughput", "--model", str(tiny_llama), "--dataset-name", "sharegpt",
                   "--dataset-path", str(dataset), "--num-prompts", "3", "--output-len", "5")
    assert result.exit_code == 0, result.output
    assert figure(result.stdout, "Total num output tokens") == 15
    assert figure(result.stdout, "Total num prompt tokens") > 3 * 5


def test_hf_baseline_prints_the_ratio(tiny_llama, tmp_path):
    path = tmp_path / "throughput.json"
    result = bench("throughput", "--model", str(tiny_llama), "--num-prompts", "4", "--input-len", "6",
                   "--output-len", "3", "--random-range-ratio", "0.5", "--dtype", "float32",
                   "--hf-baseline", "--hf-max-batch-size", "2", "--output-json", str(path))
    assert result.exit_code == 0, result.output
    assert "transformers generate (float32, batches of 2): " in result.stdout
    ratio = figure(result.stdout, "fw / transformers")
    saved = json.loads(path.read_text())
    baseline = saved["transformers"]
    assert ratio > 0 and round(saved["fw_over_transformers"], 2) == ratio
    assert baseline["num_requests"] == 4 and baseline["output_tokens_per_second"] > 0
    # the same prompts and output lengths on both sides
    assert (baseline["total_prompt_tokens"], baseline["total_output_tokens"]) == (
        saved["total_prompt_tokens"], saved["total_output_tokens"])


@pytest.mark.parametrize("args, flag", [
    (["latency", "--batch-size", "0"], "--batch-size"),
    (["latency", "--num-iters", "many"], "--num-iters"),
    (["latency", "--max-num-seqs", "x"], "--max-num-seqs"),
    (["throughput", "--random-range-ratio", "1.5"], "--random-range-ratio"),
    (["throughput", "--dtype", "int3"], "--dtype"),
    (["throughput", "--dataset-name", "sharegpt"], "--dataset-path"),
    (["throughput", "--dataset-name", "sharegpt", "--dataset-path", "/no/such/file.json"], "--dataset-path"),
])
def test_bad_values_name_the_flag(args, flag):
    result = bench(*args)
    assert result.exit_code == 2
    assert flag in result.output and "Traceback" not in result.output


def test_lengths_beyond_the_context_name_the_flags(tiny_llama):
    result = bench("latency", "--model", str(tiny_llama), "--max-model-len", "64",
                   "--input-len", "60", "--output-len", "8")
    assert result.exit_code == 2
    assert "--input-len 60 plus --output-len 8 exceed the model's context of 64" in result.output


def test_a_missing_model_is_one_line(tmp_path):
    result = bench("throughput", "--model", str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert "nothing" in result.output and "Traceback" not in result.output


def test_benchmark_script_quick(tiny_llama, tmp_path, capsys):
    script = load_benchmark("offline", "offline_benchmark")
    path = tmp_path / "figures.json"
    assert script.main(["--quick", "--model", str(tiny_llama), "--dtype", "float32",
                        "--output-json", str(path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| offline") or line.startswith("| single")]
    assert len(rows) == 2 and all(re.search(r"\| [\d.]+x \|$", row) for row in rows)
    assert f"command: python benchmarks/offline.py --quick --model {tiny_llama}" in out
    saved = json.loads(path.read_text())
    assert saved["dtype"] == "float32"
    assert saved["offline"]["fw"]["total_output_tokens"] == saved["offline"]["transformers"]["total_output_tokens"]
    assert saved["single_stream"]["fw"]["num_requests"] == saved["shape"]["single_stream_prompts"]
