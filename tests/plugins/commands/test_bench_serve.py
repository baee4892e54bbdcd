"""`fw bench serve` against the fake OpenAI-compatible server: the result table, the JSON
file, the datasets, the traffic options and the one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fw.cli.main import cli

TABLE_KEYS = {
    "Successful requests": "completed",
    "Benchmark duration (s)": "duration",
    "Total input tokens": "total_input_tokens",
    "Total generated tokens": "total_output_tokens",
    "Request throughput (req/s)": "request_throughput",
    "Output token throughput (tok/s)": "output_throughput",
    "Total Token throughput (tok/s)": "total_token_throughput",
    "Mean TTFT (ms)": "mean_ttft_ms", "Median TTFT (ms)": "median_ttft_ms", "P99 TTFT (ms)": "p99_ttft_ms",
    "Mean TPOT (ms)": "mean_tpot_ms", "P50 TPOT (ms)": "p50_tpot_ms",
    "Mean ITL (ms)": "mean_itl_ms", "P99 ITL (ms)": "p99_itl_ms",
    "Mean E2EL (ms)": "mean_e2el_ms", "P90 E2EL (ms)": "p90_e2el_ms",
}
SECTIONS = ["Time to First Token", "Time per Output Token (excl. 1st token)",
            "Inter-token Latency", "End-to-end Latency"]


def bench(*args: str):
    return CliRunner().invoke(cli, ["bench", "serve", "--disable-tqdm", *args], prog_name="fw")


def table(output: str) -> dict[str, float]:
    start = output.index("=== Serving Benchmark Result ===")
    rows = {}
    for line in output[start:].splitlines():
        label, colon, value = line.partition(":")
        if colon and value.strip():
            rows[label] = float(value)
    return rows


@pytest.fixture
def custom_dataset(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"tell me story number {i}"}) + "\n" for i in range(12)))
    return path


def test_table_and_saved_json_agree(fake_server, custom_dataset, tmp_path):
    result = bench("--base-url", fake_server.url, "--dataset-name", "custom",  # a trailing /v1 is fine
                   "--dataset-path", str(custom_dataset), "--num-prompts", "10",
                   "--custom-output-len", "8", "--ignore-eos", "--metric-percentiles", "50,90,99",
                   "--save-result", "--result-dir", str(tmp_path / "out"), "--result-filename", "r.json")
    assert result.exit_code == 0, result.output
    for section in SECTIONS:
        assert f"{section:-^50}" in result.stdout
    rows = table(result.stdout)
    assert rows["Successful requests"] == 10
    assert rows["Total generated tokens"] == 80  # the server's usage, 8 tokens each
    assert rows["Total input tokens"] == 50  # 5 words per prompt in the fake's usage
    assert rows["Request throughput (req/s)"] > 0 and rows["Output token throughput (tok/s)"] > 0
    saved = json.loads((tmp_path / "out" / "r.json").read_text())
    for label, key in TABLE_KEYS.items():
        assert rows[label] == pytest.approx(round(saved[key], 2), abs=0.006), label
    assert saved["model_id"] == "fake-model" and saved["num_prompts"] == 10
    assert saved["output_lens"] == [8] * 10 and len(saved["itls"]) == 10
    bodies = fake_server.bodies("/v1/completions")
    assert len(bodies) == 11  # one test request first, then the ten
    assert all(b["ignore_eos"] and b["max_tokens"] == 8 and b["stream_options"]["include_usage"]
               for b in bodies)


def test_random_prompts_on_the_chat_endpoint(fake_server, tiny_llama):
    result = bench("--port", str(fake_server.port), "--endpoint", "/v1/chat/completions",
                   "--tokenizer", str(tiny_llama), "--num-prompts", "6", "--random-input-len", "20",
                   "--random-output-len", "5", "--random-range-ratio", "0.5", "--ignore-eos",
                   "--request-rate", "200", "--max-concurrency", "2", "--seed", "3",
                   "--percentile-metrics", "ttft,e2el")
    assert result.exit_code == 0, result.output
    rows = table(result.stdout)
    assert rows["Successful requests"] == 6 and rows["Maximum request concurrency"] == 2
    assert "Mean TTFT (ms)" in rows and "Mean ITL (ms)" not in rows
    bodies = fake_server.bodies("/v1/chat/completions")
    assert len(bodies) == 7
    assert all(2 <= b["max_completion_tokens"] <= 7 for b in bodies)
    assert rows["Total generated tokens"] == sum(b["max_completion_tokens"] for b in bodies[1:])
    prompts = sorted(b["messages"][0]["content"] for b in bodies)  # arrival order may vary
    fake_server.requests.clear()
    bench("--port", str(fake_server.port), "--endpoint", "/v1/chat/completions",
          "--tokenizer", str(tiny_llama), "--num-prompts", "6", "--random-input-len", "20",
          "--random-output-len", "5", "--random-range-ratio", "0.5", "--seed", "3")
    assert sorted(b["messages"][0]["content"] for b in fake_server.bodies("/v1/chat/completions")) == prompts


def test_sharegpt_dataset(fake_server, tiny_llama, tmp_path):
    conversations = [{"conversations": [
        {"from": "human", "value": f"What is the capital of country number {i}? Please explain."},
        {"from": "gpt", "value": "The capital is Paris, a city on the river Seine."}]} for i in range(5)]
    conversations.append({"conversations": [{"from": "human", "value": "no reply"}]})
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(conversations))
    result = bench("--port", str(fake_server.port), "--model", "fake-model", "--tokenizer", str(tiny_llama),
                   "--dataset-name", "sharegpt", "--dataset-path", str(path), "--num-prompts", "4")
    assert result.exit_code == 0, result.output
    assert table(result.stdout)["Successful requests"] == 4
    result = bench("--port", str(fake_server.port), "--tokenizer", str(tiny_llama),
                   "--dataset-name", "sharegpt", "--dataset-path", str(path), "--num-prompts", "9")
    assert result.exit_code == 2 and "has 5 usable prompts but --num-prompts is 9" in result.output


def test_prefix_repetition_dataset_shares_a_few_prefixes(fake_server, tiny_llama):
    result = bench("--port", str(fake_server.port), "--tokenizer", str(tiny_llama), "--dataset-name",
                   "prefix_repetition", "--num-prompts", "12", "--prefix-repetition-prefix-len", "40",
                   "--prefix-repetition-suffix-len", "10", "--prefix-repetition-num-prefixes", "3",
                   "--prefix-repetition-output-len", "4", "--ignore-eos")
    assert result.exit_code == 0, result.output
    bodies = fake_server.bodies("/v1/completions")[1:]  # after the warm-up request
    assert len(bodies) == 12 and all(b["max_tokens"] == 4 for b in bodies)
    starts = {b["prompt"][:60] for b in bodies}
    assert len(starts) == 3  # three shared prefixes, each with its own suffixes
    assert len({b["prompt"] for b in bodies}) == 12


def test_unreachable_server(dead_url):
    result = bench("--base-url", dead_url.removesuffix("/v1"))
    assert result.exit_code == 1
    assert result.stderr == f"cannot reach {dead_url} — is `fw serve` running?\n"


def test_a_bad_model_stops_before_the_load(fake_server, custom_dataset):
    result = bench("--port", str(fake_server.port), "--model", "nope", "--dataset-name", "custom",
                   "--dataset-path", str(custom_dataset), "--num-prompts", "5")
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("server error (404): The model `nope` does not exist.")
    assert len(fake_server.requests) == 1


@pytest.mark.parametrize("args,message", [
    (["--percentile-metrics", "ttft,speed"], "--percentile-metrics"),
    (["--metric-percentiles", "0"], "--metric-percentiles"),
    (["--dataset-name", "sharegpt"], "--dataset-name sharegpt needs --dataset-path"),
    (["--request-rate", "0"], "--request-rate"),
    (["--endpoint", "/v1/audio/transcriptions"], "--endpoint"),
])
def test_bad_options_name_the_flag(args, message):
    result = bench(*args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_bench_group_lists_serve():
    result = CliRunner().invoke(cli, ["bench", "--help"], prog_name="fw")
    assert result.exit_code == 0 and "serve" in result.output
