"""The client commands against fw's own server (the real engine over a tiny random
checkpoint, in a thread of this process), to prove they speak its dialect, not just the
fake's. The tiny model's text is noise; only the shape of the output is checked."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fw.cli.main import cli

from tests.core.server.conftest import real_engine_server


@pytest.fixture(scope="module")
def fw_server(tiny_llama):
    """The API root (…/v1) of `fw serve TINY_LLAMA --port 0`, running in a thread."""
    with real_engine_server(model=str(tiny_llama)) as live:
        yield f"{live.url}/v1"


def fw(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="fw")


def test_chat_and_complete_quick(fw_server):
    for command in (["chat"], ["chat", "--api", "responses"], ["complete"]):
        result = fw(*command, "--url", fw_server, "-q", "Hello")
        assert result.exit_code == 0, result.output
        assert result.stdout.endswith("\n") and result.stderr == ""


def test_server_errors_are_one_line(fw_server):
    result = fw("chat", "--url", fw_server, "--model-name", "nope", "-q", "Hello")
    assert result.exit_code == 1
    assert result.stderr.startswith("server error (404): ") and result.stderr.count("\n") == 1


def test_bench_serve_table_and_json(fw_server, tiny_llama, tmp_path):
    result = fw("bench", "serve", "--base-url", fw_server, "--num-prompts", "8",
                "--random-input-len", "16", "--random-output-len", "6", "--ignore-eos",
                "--max-concurrency", "4", "--disable-tqdm", "--save-result",
                "--result-dir", str(tmp_path), "--result-filename", "fw.json")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "fw.json").read_text())
    assert saved["completed"] == 8 and saved["total_output_tokens"] == 48  # the server's usage
    assert saved["model_id"] == str(tiny_llama)
    assert saved["output_throughput"] > 0
    assert f"{'Output token throughput (tok/s):':<40} {saved['output_throughput']:.2f}" in result.stdout


@pytest.mark.parametrize("endpoint", ["/v1/responses", "/v1/messages"])
def test_bench_serve_drives_the_responses_and_messages_apis(fw_server, endpoint, tmp_path):
    result = fw("bench", "serve", "--base-url", fw_server, "--endpoint", endpoint, "--num-prompts", "4",
                "--random-input-len", "16", "--random-output-len", "5", "--ignore-eos", "--disable-tqdm",
                "--save-result", "--result-dir", str(tmp_path), "--result-filename", "r.json")
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["completed"] == 4 and saved["total_output_tokens"] == 20  # the server's usage
    assert saved["total_input_tokens"] >= 4 * 16 and saved["mean_ttft_ms"] > 0
