"""`fw serve ORG/NAME` and `fw run-batch --model ORG/NAME` as a user runs them: in a fresh
process whose environment names the hub (HF_ENDPOINT, a stand-in server here), the
cache (HF_HOME) and offline mode (HF_HUB_OFFLINE)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx

from tests.conftest import run_fw
from tests.fake_hub import FakeHub, folder_files, lay_out_cache


def hub_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {**env, "HF_HOME": str(tmp_path / "hf"), "FW_CACHE_DIR": str(tmp_path / "fw-cache"), **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fw_serve_downloads_a_revision_with_progress_then_serves_it(tiny_llama, tmp_path):
    hub = FakeHub().start()
    files = {name: path.read_bytes() for name, path in folder_files(tiny_llama).items()}
    config = json.loads(files["config.json"])
    wanted = hub.add("org/tiny", files, branch="v1")
    hub.add("org/tiny", files | {"config.json": json.dumps({**config, "max_position_embeddings": 256}).encode()})
    port = free_port()
    log = tmp_path / "serve.log"  # a file, not a pipe: a full pipe would stall the server
    command = [sys.executable, "-m", "fw.cli.main", "serve", "org/tiny", "--revision", "v1", "--port", str(port),
               "--dtype", "float32", "--disable-log-stats"]
    with log.open("w") as sink:
        server = subprocess.Popen(command, env=hub_env(tmp_path, HF_ENDPOINT=hub.url), stdout=sink,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"fw serve exited:\n{log.read_text()[-3000:]}"
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"fw serve did not come up:\n{log.read_text()[-3000:]}"
                time.sleep(0.3)
        assert health.status_code == 200
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()["data"]
        assert [m["id"] for m in models] == ["org/tiny"]
        assert models[0]["max_model_len"] == config["max_position_embeddings"]  # v1's config, not main's
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        hub.stop()
    text = log.read_text()
    assert "org/tiny: downloading to" in text and "Fetching 6 files: 100%" in text, text[-3000:]  # with progress
    assert "from the Hugging Face cache" in text  # the engine core finds what the API server fetched
    assert (tmp_path / "hf" / "hub" / "models--org--tiny" / "snapshots" / wanted / "model.safetensors").is_file()


def test_fw_run_batch_offline_from_the_cache(tiny_llama, tmp_path):
    lay_out_cache(tmp_path / "hf" / "hub", "org/tiny", folder_files(tiny_llama))
    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions",
                                 "body": {"model": "org/tiny", "prompt": "The capital of", "max_tokens": 3}}) + "\n")
    result = run_fw("run-batch", "-i", str(batch), "-o", str(tmp_path / "out.jsonl"), "--model", "org/tiny",
                    "--dtype", "float32", env=hub_env(tmp_path, HF_HUB_OFFLINE="1"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "out.jsonl").read_text())
    assert record["error"] is None and record["response"]["body"]["usage"]["completion_tokens"] == 3


def test_fw_serve_offline_with_nothing_cached_is_one_line(tmp_path):
    result = run_fw("serve", "org/missing", env=hub_env(tmp_path, HF_HUB_OFFLINE="1"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == [f"Error: org/missing: is not in the Hugging Face cache ({tmp_path / 'hf' / 'hub'}) and "
                      "HF_HUB_OFFLINE=1 forbids downloading it: unset HF_HUB_OFFLINE, or run `hf download "
                      "org/missing` where the hub is reachable, or pass a local folder"], result.stderr
    assert "Traceback" not in result.stderr
