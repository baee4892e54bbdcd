"""The Llama family's one-call decode path gives exactly the layer-by-layer results, and
only takes the steps it is built for: pure decode, with int4 weights up to 8 tokens and
int8 or dense bf16 weights for any count."""

from __future__ import annotations

import pytest
import torch

from fw import LLM, SamplingParams
from fw_builtins.models import llama
from fw_kernels import cpu
from fw_kernels.cpu.decoder import FusedDecoder
from tests.core.engine.conftest import PROMPTS

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")

CHECKPOINTS = [
    ("LlamaForCausalLM", {}),
    ("MistralForCausalLM", {"sliding_window": 6}),
    ("Qwen2ForCausalLM", {}),  # q/k/v biases
    ("Qwen3ForCausalLM", {}),  # per-head q/k norms
]
PARAMS = SamplingParams(max_tokens=12, min_tokens=12, temperature=0.0, logprobs=2)


@pytest.fixture
def fused_rows(monkeypatch):
    """The row count of every call the fused decoder takes."""
    rows: list[int] = []
    original = FusedDecoder.__call__

    def spy(self, embedded, *args):
        rows.append(embedded.shape[0])
        return original(self, embedded, *args)

    monkeypatch.setattr(FusedDecoder, "__call__", spy)
    return rows


def _results(outputs):
    return [(c.token_ids, [{t: e.logprob for t, e in entry.items()} for entry in c.logprobs])
            for o in outputs for c in o.outputs]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("architecture,overrides", CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_same_tokens_and_logprobs_as_layer_by_layer(architecture, overrides, dtype, tiny_checkpoint_factory,
                                                     fused_rows, monkeypatch):
    path = tiny_checkpoint_factory(architecture, **overrides)
    llm = LLM(str(path), dtype=dtype, quantization="int4", enable_prefix_caching=False, block_size=8)
    fused = _results(llm.generate(PROMPTS[:3], PARAMS, use_tqdm=False))
    assert fused_rows and max(fused_rows) == 3  # the three sequences decoded together, fused

    monkeypatch.setattr(llama, "fused_decode", lambda *args: None)
    assert _results(llm.generate(PROMPTS[:3], PARAMS, use_tqdm=False)) == fused


@pytest.mark.skipif(not cpu.dense_available(), reason="fw's dense bf16 GEMM is not built on this CPU")
@pytest.mark.parametrize("quantization", [None, "int4"])
def test_bf16_batches_beyond_eight_fuse_on_int8_or_dense_weights(quantization, tiny_checkpoint_factory, fused_rows,
                                                                monkeypatch):
    path = tiny_checkpoint_factory("Qwen2ForCausalLM")
    llm = LLM(str(path), dtype="bfloat16", quantization=quantization, enable_prefix_caching=False, block_size=8)
    down = llm.engine.loaded.model.model.layers[0].mlp.down_proj
    assert hasattr(down, "int8_panels") == (quantization == "int4" and cpu.int8_gemm_available())
    many = PROMPTS * 2
    fused = _results(llm.generate(many, PARAMS, use_tqdm=False))
    assert max(fused_rows) == len(many)

    monkeypatch.setattr(llama, "fused_decode", lambda *args: None)
    assert _results(llm.generate(many, PARAMS, use_tqdm=False)) == fused


def test_float32_takes_only_small_int4_steps(tiny_checkpoint_factory, fused_rows):
    path = tiny_checkpoint_factory("LlamaForCausalLM")
    quantized = LLM(str(path), dtype="float32", quantization="int4")
    fused_rows.clear()  # the engine's warm-up decodes one token
    many = PROMPTS * 2  # more sequences than the fused decoder takes: they decode layer by layer
    assert len(many) > cpu.MAX_GEMV_ROWS
    quantized.generate(many, SamplingParams(max_tokens=4, ignore_eos=True), use_tqdm=False)
    assert fused_rows == []
    dense = LLM(str(path), dtype="float32")
    before = len(fused_rows)
    dense.generate(PROMPTS[:1], SamplingParams(max_tokens=4, ignore_eos=True), use_tqdm=False)
    assert len(fused_rows) == before
    assert torch.is_tensor(dense.engine.loaded.model.model.layers[0].mlp.down_proj.weight)
