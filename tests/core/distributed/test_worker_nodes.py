"""Two "nodes" on this machine: `fw serve -tp 2 --nnodes 2` with node 1 headless serves
the API from node 0 with one rank on each node, answers as one rank does (the official
``openai`` client asks), and both nodes end cleanly when node 0 is stopped. Option
mistakes are refused with the reason before anything starts."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from fw import SamplingParams
from tests.conftest import run_fw

PROMPT = "The capital of France is"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as sink:  # a file, not a pipe: a full pipe would stall the process
        return subprocess.Popen([sys.executable, "-m", "fw.cli.main", *args], stdout=sink, stderr=subprocess.STDOUT)


def wait_healthy(url: str, node0: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while True:
        assert node0.poll() is None, f"node 0 exited:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"node 0 did not come up in 180 s:\n{log.read_text()[-3000:]}"
        time.sleep(0.3)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_headless_worker_node_serves_with_node_0(tiny_llama, tmp_path, tp_llm):
    expected = tp_llm(tiny_llama).generate(PROMPT, SamplingParams(max_tokens=8, temperature=0.0),
                                            use_tqdm=False)[0].outputs[0].text
    master, port = free_port(), free_port()
    common = ["serve", str(tiny_llama), "--dtype", "float32", "-tp", "2", "--nnodes", "2", "--master-addr", "127.0.0.1",
              "--master-port", str(master)]
    logs = [tmp_path / "node0.log", tmp_path / "node1.log"]
    node1 = start([*common, "--node-rank", "1", "--headless"], logs[1])
    node0 = start([*common, "--node-rank", "0", "--port", str(port)], logs[0])
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, node0, logs[0])
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        completion = client.completions.create(model=str(tiny_llama), prompt=PROMPT, max_tokens=8, temperature=0)
        assert completion.choices[0].text == expected
        node0.send_signal(signal.SIGINT)
        assert node0.wait(60) == 0, logs[0].read_text()[-3000:]
        assert node1.wait(60) == 0, logs[1].read_text()[-3000:]  # rank 0 told its rank to stop
        assert "rank 0 stopped this node's ranks" in logs[1].read_text()
    finally:
        for node in (node0, node1):
            if node.poll() is None:
                node.kill()
                node.wait(10)


@pytest.mark.parametrize("args, message", [
    ("-tp 2 --nnodes 2 --node-rank 1 --master-port 29999", "--node-rank 1 runs only tensor-parallel ranks"),
    ("-tp 2 --nnodes 2 --node-rank 1", "--master-port is required with --nnodes 2"),
    ("-tp 3 --nnodes 2 --master-port 29999", "--tensor-parallel-size 3 does not split evenly over --nnodes 2"),
    ("-tp 2 --nnodes 2 --master-port 29999 --headless", "--headless runs worker nodes"),
    ("-tp 2 --nnodes 2 --master-port 29999 --distributed-executor-backend ray", "--nnodes is for the mp backend"),
])
def test_node_options_that_cannot_work_are_refused_with_the_reason(args, message, tiny_llama):
    result = run_fw("serve", str(tiny_llama), *args.split(), "--port", "0", timeout=120)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
