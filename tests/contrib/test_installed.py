"""Every contrib distribution installs with pip into a fresh venv, its own tests pass
there, `fw plugins` lists it, and its names work where users give them."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import httpx
import pytest

from tests.contrib.conftest import CONTRIB, run_pytest

#: what each contrib's entry point registers (as `fw plugins --json` reports it)
EXPECTED = {
    "fw-plugin-gpt2": ("gpt2", {"model": ["GPT2LMHeadModel"]}, ["fw_register_models"]),
    "fw-plugin-example-parsers": ("example_parsers", {"tool_parser": ["example_xml"],
                                                      "reasoning_parser": ["example_reasoning"]},
                                  ["fw_register_reasoning_parsers", "fw_register_tool_parsers"]),
    "fw-plugin-example-middleware": ("example_middleware", {}, ["fw_asgi_middleware"]),
    "fw-plugin-example-command": ("example_command", {"command": ["hello"]}, ["fw_register_commands"]),
}


def test_every_contrib_is_covered_here():
    assert sorted(EXPECTED) == CONTRIB


def test_contrib_tests_pass_in_the_venv(ecosystem, tmp_path):
    outcomes = run_pytest(ecosystem, list(ecosystem.contrib.values()), tmp_path / "contrib.xml")
    output = outcomes.pop("<output>")
    bad = {test: outcome for test, outcome in outcomes.items() if outcome != "passed"}
    assert not bad, output[-4000:]
    for name, project in ecosystem.contrib.items():
        modules = [module.stem for module in (project / "tests").glob("test_*.py")]
        assert any(module in test for module in modules for test in outcomes), f"no test of {name} ran"


def test_fw_plugins_lists_every_contrib(ecosystem):
    result = ecosystem.venv.run("fw", "plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["distribution"]: p for p in json.loads(result.stdout) if not p["builtin"]}
    assert {f"fw-plugin-ci-{kind}" for kind in ecosystem.rendered} <= set(plugins)
    for dist, (entry_point, registers, hooks) in EXPECTED.items():
        plugin = plugins[dist]
        assert (plugin["name"], plugin["registers"], plugin["hooks"], plugin["error"]) == (
            entry_point, registers, hooks, None), dist


def test_registered_names_resolve(ecosystem):
    code = ("from fw.plugins import load\n"
            "for kind, name in [('model', 'GPT2LMHeadModel'), ('tool_parser', 'example_xml'),\n"
            "                   ('reasoning_parser', 'example_reasoning'), ('command', 'hello')]:\n"
            "    target = load(kind, name)\n"
            "    print(kind, name, getattr(target, '__qualname__', getattr(target, 'name', None)))\n")
    result = ecosystem.venv.run("python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == [
        "model GPT2LMHeadModel GPT2LMHeadModel",
        "tool_parser example_xml XmlToolParser",
        "reasoning_parser example_reasoning BracketReasoningParser",
        "command hello hello",
    ]


@pytest.fixture(scope="module")
def gpt2_checkpoint(tmp_path_factory):
    """A tiny random GPT-2 with the test suite's tiny tokenizer (and its chat template)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.checkpoints import tiny_tokenizer

    folder = tmp_path_factory.mktemp("gpt2")
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=128,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_fw_serve_with_the_contrib_plugins(ecosystem, gpt2_checkpoint, tmp_path):
    """`fw serve PATH` serves the GPT-2 checkpoint with the example parsers selected by
    name (start-up stops on a name no plugin registered), and the middleware's header
    is on every response."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [str(ecosystem.venv.bin / "fw"), "serve", str(gpt2_checkpoint), "--port", str(port),
               "--dtype", "float32", "--disable-log-stats", "--enable-auto-tool-choice",
               "--tool-call-parser", "example_xml", "--reasoning-parser", "example_reasoning"]
    env = ecosystem.venv.env(**ecosystem.allow(ecosystem.contrib.values()))
    log = tmp_path / "serve.log"  # a file, not a pipe: a full pipe would stall the server
    with log.open("w") as sink:
        server = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"{' '.join(command)} exited:\n{log.read_text()[-3000:]}"
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, f"fw serve did not come up in 120 s:\n{log.read_text()[-3000:]}"
                time.sleep(0.3)
        assert health.headers["x-fw-example"] == "hello from fw-plugin-example-middleware"
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
        response = httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "Hello!"}], "tools": [tool], "max_tokens": 8,
            "temperature": 0})
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] >= 1
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)
