"""The fused CPU decode step: any model that describes its decoder gets it, it gives exactly
the layer-by-layer results (every built-in architecture: the Llama family, Gemma 2/3's
norms, windows, soft caps and GELU gate, Phi-3's LongRoPE, the mixtures of experts), and
it takes prompts and decoding alike, in the steps it is built for (int4 weights up to 8
tokens, int8 or dense bf16 weights for any count)."""

from __future__ import annotations

import json
import shutil

import pytest
from torch import nn

from fw import LLM, SamplingParams, hookimpl
from fw.engine import fused_decode
from fw.layers.activation import silu_and_mul
from fw.layers.attention import Attention
from fw.layers.embedding import LMHead, VocabEmbedding
from fw.layers.linear import Linear, MergedLinear
from fw.layers.norm import RMSNorm
from fw.layers.packed import DensePanels, Int4Blocks
from fw.layers.rotary import RotaryEmbedding
from fw.models.description import DecoderDescription, DecoderLayerDescription
from fw.plugins import register_plugin
from fw_kernels import cpu
from fw_kernels.cpu.decoder import FusedDecoder
from tests.core.engine.conftest import PROMPTS

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")

LLAMA_FAMILY = [
    ("LlamaForCausalLM", {}),
    ("MistralForCausalLM", {"sliding_window": 6}),
    ("Qwen2ForCausalLM", {}),  # q/k/v biases
    ("Qwen3ForCausalLM", {}),  # per-head q/k norms
]
BEYOND_LLAMA = ["Gemma2ForCausalLM", "Gemma3ForCausalLM", "Phi3ForCausalLM", "MixtralForCausalLM",
                "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"]
PARAMS = SamplingParams(max_tokens=12, min_tokens=12, temperature=0.0, logprobs=2)


@pytest.fixture
def fused_rows(monkeypatch):
    """The row count of every call the fused decoder takes."""
    rows: list[int] = []
    original = FusedDecoder.__call__

    def spy(self, embedded, *args, **kwargs):
        rows.append(embedded.shape[0])
        return original(self, embedded, *args, **kwargs)

    monkeypatch.setattr(FusedDecoder, "__call__", spy)
    return rows


def _generate_fused(llm: LLM, prompts, fused_rows, params=PARAMS):
    """The requests' results, checking that their prompts (one step) and their decoding (one
    token per sequence) both went through the fused decoder."""
    fused_rows.clear()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    assert sum(len(o.prompt_token_ids) for o in outputs) in fused_rows  # the prompts, fused
    assert len(prompts) in fused_rows  # the sequences decoded together, fused
    return _results(outputs)


def _results(outputs):
    return [(c.token_ids, [{t: e.logprob for t, e in entry.items()} for entry in c.logprobs])
            for o in outputs for c in o.outputs]


def _unfused(llm: LLM, prompts, params=PARAMS):
    """The same requests with the fused step switched off (layer by layer)."""
    runner = llm.engine.runner
    step, runner.fused_decode = runner.fused_decode, None
    try:
        return _results(llm.generate(prompts, params, use_tqdm=False))
    finally:
        runner.fused_decode = step


# -- a model plugin written for this test: the fast path by describing itself ------------


class ToyBlock(nn.Module):
    def __init__(self, config, ctx):
        super().__init__()
        hidden, heads, kv_heads = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
        head, inter, eps = hidden // heads, config.intermediate_size, config.rms_norm_eps
        common = dict(dtype=ctx.dtype, device=ctx.device, quant_method=ctx.quantization)
        self.norm1, self.norm2 = (RMSNorm(hidden, eps, dtype=ctx.dtype) for _ in range(2))
        self.qkv = MergedLinear(hidden, [heads * head, kv_heads * head, kv_heads * head], **common)
        self.out = Linear(heads * head, hidden, **common)
        self.up = MergedLinear(hidden, [inter, inter], **common)
        self.down = Linear(inter, hidden, **common)
        self.rope = RotaryEmbedding(head, head, ctx.extra["max_model_len"], 10000.0, dtype=ctx.dtype)
        self.attn = Attention(heads, head, head ** -0.5, kv_heads, ctx)

    def forward(self, positions, h, residual):
        x, residual = self.norm1(h, residual) if residual is not None else (self.norm1(h), h)
        q, k, v = self.qkv.split(self.qkv(x))
        h = self.out(self.attn(*self.rope(positions, q, k), v))
        x, residual = self.norm2(h, residual)
        return self.down(silu_and_mul(self.up(x))), residual


class ToyDecoderForCausalLM(nn.Module):
    """Not Llama: its own modules and names, built from fw.layers."""

    #: the gate its description declares
    gate = "silu"

    def __init__(self, config, ctx):
        super().__init__()
        self.embed = VocabEmbedding(config.vocab_size, config.hidden_size, dtype=ctx.dtype)
        self.blocks = nn.ModuleList(ToyBlock(config, ctx) for _ in range(config.num_hidden_layers))
        self.final = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype=ctx.dtype)
        self.head = LMHead(config.vocab_size, config.hidden_size, dtype=ctx.dtype)

    def forward(self, input_ids, positions):
        h, residual = self.embed(input_ids), None
        for block in self.blocks:
            h, residual = block(positions, h, residual)
        return self.final(h, residual)[0]

    def compute_logits(self, hidden):
        return self.head(hidden)

    def describe_decoder(self):
        return DecoderDescription(self.embed, [DecoderLayerDescription(
            input_norm=b.norm1, post_attention_norm=b.norm2, qkv=b.qkv, o=b.out, gate_up=b.up, down=b.down,
            attention=b.attn, rotary=b.rope, activation=self.gate) for b in self.blocks], self.final)


class ToyPlugin:
    @hookimpl
    def fw_register_models(self, register):
        register("ToyDecoderForCausalLM", ToyDecoderForCausalLM)


@pytest.fixture(scope="module")
def toy_model(tiny_llama, tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_llama / name).exists():
            shutil.copy(tiny_llama / name, folder / name)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["ToyDecoderForCausalLM"]
    (folder / "config.json").write_text(json.dumps(config))
    unregister = register_plugin(ToyPlugin(), "toy-decoder")
    yield folder
    unregister()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_model_that_describes_its_decoder_gets_the_fused_path(toy_model, dtype, fused_rows):
    llm = LLM(str(toy_model), dtype=dtype, load_format="dummy", quantization="int4", enable_prefix_caching=False,
              block_size=8)
    assert llm.engine.runner.fused_decode is not None
    fused = _generate_fused(llm, PROMPTS[:3], fused_rows)
    calls = len(fused_rows)
    assert _unfused(llm, PROMPTS[:3]) == fused
    assert len(fused_rows) == calls  # the unfused run never entered the fused decoder


def test_what_the_fused_decoder_cannot_compute_runs_layer_by_layer(toy_model, monkeypatch):
    monkeypatch.setattr(ToyDecoderForCausalLM, "gate", "gelu")  # a gate the C decoder does not compute
    llm = LLM(str(toy_model), load_format="dummy", quantization="int4")
    assert llm.engine.runner.fused_decode is None
    with pytest.raises(fused_decode.NotFusable, match="'gelu' activation"):
        fused_decode._decoder(llm.engine.loaded.model.describe_decoder())


def test_an_attention_backend_must_declare_it_can_be_fused(toy_model, monkeypatch):
    from fw_builtins.attention.torch_backend import TorchAttentionBackend

    monkeypatch.setattr(TorchAttentionBackend, "fused_cpu_decode", False)
    llm = LLM(str(toy_model), load_format="dummy", quantization="int4")
    assert llm.engine.runner.fused_decode is None
    with pytest.raises(fused_decode.NotFusable, match="does not declare fused_cpu_decode"):
        fused_decode._decoder(llm.engine.loaded.model.describe_decoder())


# -- the built-in Llama family ----------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("architecture,overrides", LLAMA_FAMILY, ids=[c[0] for c in LLAMA_FAMILY])
def test_llama_family_same_tokens_and_logprobs_as_layer_by_layer(architecture, overrides, dtype,
                                                                 tiny_checkpoint_factory, fused_rows):
    path = tiny_checkpoint_factory(architecture, **overrides)
    llm = LLM(str(path), dtype=dtype, quantization="int4", enable_prefix_caching=False, block_size=8)
    fused = _generate_fused(llm, PROMPTS[:3], fused_rows)
    assert _unfused(llm, PROMPTS[:3]) == fused


@pytest.mark.parametrize("architecture,overrides", [LLAMA_FAMILY[0], LLAMA_FAMILY[1]], ids=["Llama", "Mistral"])
def test_prompts_split_into_chunks_fuse_to_the_layer_by_layer_results(architecture, overrides,
                                                                      tiny_checkpoint_factory, fused_rows):
    """A chunk attends to the chunks before it through the cache (and Mistral's window),
    mixed with other sequences' decoding in one step."""
    path = tiny_checkpoint_factory(architecture, **overrides)
    llm = LLM(str(path), dtype="bfloat16", quantization="int4", enable_prefix_caching=False, block_size=8,
              max_num_batched_tokens=16)
    fused = _results(llm.generate(PROMPTS[:3], PARAMS, use_tqdm=False))
    assert 16 in fused_rows  # full chunks went through the fused decoder
    assert _unfused(llm, PROMPTS[:3]) == fused


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("architecture", BEYOND_LLAMA)
def test_every_architecture_fuses_to_the_layer_by_layer_results(architecture, dtype, tiny_checkpoint_factory,
                                                                fused_rows):
    path = tiny_checkpoint_factory(architecture)
    llm = LLM(str(path), dtype=dtype, quantization="int4", enable_prefix_caching=False, block_size=8)
    fused = _generate_fused(llm, PROMPTS[:3], fused_rows)
    assert _unfused(llm, PROMPTS[:3]) == fused


@pytest.mark.skipif(not cpu.dense_available(), reason="fw's dense bf16 GEMM is not built on this CPU")
@pytest.mark.parametrize("architecture", ["Qwen2MoeForCausalLM", "Gemma3ForCausalLM"])
def test_experts_and_gemma_layers_fuse_beyond_eight_rows_on_dense_weights(architecture, tiny_checkpoint_factory,
                                                                          fused_rows):
    llm = LLM(str(tiny_checkpoint_factory(architecture)), dtype="bfloat16", enable_prefix_caching=False,
              block_size=8)
    many = PROMPTS * 2
    fused = _generate_fused(llm, many, fused_rows)
    assert _unfused(llm, many) == fused


@pytest.mark.skipif(not cpu.dense_available(), reason="fw's dense bf16 GEMM is not built on this CPU")
@pytest.mark.parametrize("quantization", [None, "int4"])
def test_bf16_batches_beyond_eight_fuse_on_int4_or_dense_weights(quantization, tiny_checkpoint_factory, fused_rows):
    path = tiny_checkpoint_factory("Qwen2ForCausalLM")
    llm = LLM(str(path), dtype="bfloat16", quantization=quantization, enable_prefix_caching=False, block_size=8)
    down = llm.engine.loaded.model.model.layers[0].mlp.down_proj
    assert [type(layout) for layout in down.packed.layouts] == [Int4Blocks if quantization else DensePanels]
    many = PROMPTS * 2
    fused = _generate_fused(llm, many, fused_rows)
    assert _unfused(llm, many) == fused


def test_float32_int4_fuses_steps_of_any_size(tiny_checkpoint_factory, fused_rows):
    """float32 int4 weights are the blocks alone (one quantization for every step), which the
    fused decoder reads for any number of rows."""
    path = tiny_checkpoint_factory("LlamaForCausalLM")
    quantized = LLM(str(path), dtype="float32", quantization="int4", enable_prefix_caching=False, block_size=8)
    many = PROMPTS * 2
    assert len(many) > cpu.MAX_GEMV_ROWS
    fused = _generate_fused(quantized, many, fused_rows)
    assert _unfused(quantized, many) == fused
    fused_rows.clear()
    dense = LLM(str(path), dtype="float32")
    assert dense.engine.runner.fused_decode is None  # float32 plain weights: nothing it reads
    dense.generate(PROMPTS[:1], SamplingParams(max_tokens=4, ignore_eos=True), use_tqdm=False)
    assert fused_rows == []
