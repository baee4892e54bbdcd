"""The installed plugin: found by fw, and token-for-token equal to transformers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROMPTS = ["The quick brown fox", "Once upon a time there was", "Hello! How are", "Numbers: 0 1 2"]
MAX_TOKENS = 16


def fw_cli(*args: str) -> subprocess.CompletedProcess:
    fw = Path(sys.executable).with_name("fw")
    return subprocess.run([str(fw), *args], capture_output=True, text=True, timeout=120)


def test_fw_register_models_makes_the_architecture_resolvable():
    from fw.plugins import registry

    entry = registry("model").entry("GPT2LMHeadModel")
    assert entry.plugin == "gpt2"
    from fw_plugin_gpt2.model import GPT2LMHeadModel

    assert registry("model").load("GPT2LMHeadModel") is GPT2LMHeadModel


def test_fw_plugins_lists_the_plugin():
    result = fw_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["gpt2"]["distribution"] == "fw-plugin-gpt2"
    assert plugins["gpt2"]["registers"] == {"model": ["GPT2LMHeadModel"]}


@pytest.fixture(scope="module")
def expected(tiny_gpt2, hf_greedy):
    tokens = [hf_greedy(tiny_gpt2, prompt, MAX_TOKENS) for prompt in PROMPTS]
    assert len({t for row in tokens for t in row}) > 10, "a degenerate reference proves nothing"
    return tokens


@pytest.mark.parametrize("options", [{}, {"max_num_batched_tokens": 5, "enable_prefix_caching": False}],
                         ids=["batched", "chunked-prefill"])
def test_greedy_tokens_match_transformers(tiny_gpt2, expected, options):
    from fw import LLM, SamplingParams

    llm = LLM(str(tiny_gpt2), dtype="float32", **options)
    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, ignore_eos=True)
    outputs = llm.generate(PROMPTS, params, use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outputs] == expected


def test_untied_lm_head_and_scaled_layers(make_tiny_gpt2, hf_greedy):
    from fw import LLM, SamplingParams

    path = make_tiny_gpt2(tie_word_embeddings=False, scale_attn_by_inverse_layer_idx=True,
                          activation_function="gelu")
    llm = LLM(str(path), dtype="float32")
    params = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
    (output,) = llm.generate([PROMPTS[0]], params, use_tqdm=False)
    assert output.outputs[0].token_ids == hf_greedy(path, PROMPTS[0], 8)


def test_checkpoints_without_the_transformer_prefix_load():
    """The original hub GPT-2 names tensors ``h.0.attn...`` and keeps mask buffers."""
    import torch

    from fw.models.interface import ModelContext
    from fw_plugin_gpt2.model import GPT2LMHeadModel
    from transformers import GPT2Config

    config = GPT2Config(vocab_size=10, n_embd=8, n_layer=1, n_head=2, n_positions=16)

    class NoAttention:
        def __init__(self, *args, **kwargs):
            pass

    model = GPT2LMHeadModel(config, ModelContext(torch.float32, torch.device("cpu"), NoAttention))
    weights = [(name.removeprefix("transformer."), torch.zeros(p.shape[::-1]) if "c_" in name else
                torch.zeros(p.shape)) for name, p in model.named_parameters()]
    weights.append(("h.0.attn.bias", torch.ones(1, 1, 16, 16)))
    assert model.load_weights(weights) == set(dict(model.named_parameters()))


def test_fw_serve_serves_a_checkpoint(tiny_gpt2, expected, tmp_path):
    """`fw serve PATH` with the plugin installed: the completion is the greedy text."""
    import httpx
    from transformers import AutoTokenizer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fw = Path(sys.executable).with_name("fw")
    log = tmp_path / "serve.log"  # a file, not a pipe: a full pipe would stall the server
    with log.open("w") as sink:
        server = subprocess.Popen([str(fw), "serve", str(tiny_gpt2), "--port", str(port), "--dtype", "float32",
                                   "--disable-log-stats", "--disable-uvicorn-access-log"],
                                  stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "fw serve did not come up in 90 s:\n" + log.read_text()[-3000:]
            time.sleep(0.3)
        response = httpx.post(f"{url}/v1/completions", timeout=60, json={
            "prompt": PROMPTS[0], "max_tokens": MAX_TOKENS, "temperature": 0, "ignore_eos": True})
        assert response.status_code == 200, response.text
        text = response.json()["choices"][0]["text"]
        assert text == AutoTokenizer.from_pretrained(tiny_gpt2).decode(expected[0])
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
