"""Weight-only int4: exact on 4-bit data, close on any data, and what ``--quantization
int4`` serves a GGUF file of 4-bit tensors with (its default is the file's own ``gguf``)."""

from __future__ import annotations

import pytest
import torch

from fw.layers.linear import Linear
from fw.layers.packed import F32Panels, Int4Blocks, PlainWeight, TorchInt4
from fw_builtins.quantization.int4 import Int4WeightOnly
from fw_kernels import cpu

#: the most rows torch's int4 kernel serves where fw's kernels are not built
INT4_MAX_ROWS = TorchInt4.max_rows


def q4_1_like(out_features: int, in_features: int, seed: int = 0) -> torch.Tensor:
    """Weights as a Q4_1 file holds them: per 32-block, levels 0..15 (both ends used)
    times a scale plus a minimum."""
    gen = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 16, (out_features, in_features // 32, 32), generator=gen)
    levels[..., 0], levels[..., 1] = 0, 15
    scale = torch.rand(out_features, in_features // 32, 1, generator=gen) * 0.01 + 0.001
    low = -torch.rand(out_features, in_features // 32, 1, generator=gen) * 0.05
    return (levels * scale + low).view(out_features, in_features)


def dequantized(weight: torch.Tensor) -> torch.Tensor:
    """What torch's int4 kernel multiplies by: its levels times its (rounded) scales."""
    return TorchInt4.pack(weight.float()).dequantize()


def test_q4_1_weights_come_back_exactly():
    weight = q4_1_like(64, 128)
    assert (dequantized(weight) - weight).abs().max() < 1e-6


def test_any_weights_come_back_within_half_a_level():
    weight = torch.randn(64, 128)
    step = (weight.view(64, 4, 32).amax(-1) - weight.view(64, 4, 32).amin(-1)) / 15
    error = (dequantized(weight) - weight).abs().view(64, 4, 32).amax(-1)
    assert (error <= step / 2 + 1e-6).all()


def make_layer(weight: torch.Tensor, dtype=torch.bfloat16) -> Linear:
    layer = Linear(weight.shape[1], weight.shape[0], dtype=dtype, quant_method=Int4WeightOnly())
    layer.weight.data.copy_(weight)
    layer.post_load()
    return layer


@pytest.fixture(params=["fw-kernels", "torch-int4"])
def kernels(request, monkeypatch):
    """Both GEMVs: fw's CPU kernel, and torch's int4 kernel that replaces it where fw's
    cannot be built."""
    if request.param == "torch-int4":
        monkeypatch.setattr(cpu, "available", lambda: False)
    elif not cpu.available():
        pytest.skip("fw's CPU kernels could not be built here")
    return request.param


#: float32 dense weights: fw's fixed-order GEMM where it is built (batch-invariant), else torch's
FLOAT32_DENSE = F32Panels if F32Panels.applies(torch.zeros(1, 1)) else PlainWeight


@pytest.mark.parametrize("rows", [1, INT4_MAX_ROWS, INT4_MAX_ROWS + 1, 32])
def test_layer_output_matches_the_4bit_weights(rows, kernels):
    weight = q4_1_like(96, 256, seed=rows)
    layer = make_layer(weight, torch.float32)
    # fw's kernel: the int4 blocks for every step; torch's int4 kernel: up to 8 rows, dense beyond
    expected_layouts = [Int4Blocks] if kernels == "fw-kernels" else [TorchInt4, FLOAT32_DENSE]
    assert [type(layout) for layout in layer.packed.layouts] == expected_layouts
    x = torch.randn(rows, 256)
    expected = x @ weight.t()
    assert (layer(x) - expected).abs().max() < 1e-3 * expected.abs().max()


def test_bfloat16_layer_is_close(kernels):
    weight = q4_1_like(96, 256)
    layer = make_layer(weight)
    x = torch.randn(2, 256, dtype=torch.bfloat16)
    expected = (x.float() @ weight.t())
    assert (layer(x).float() - expected).abs().max() < 0.02 * expected.abs().max()


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
def test_bfloat16_steps_of_any_size_run_on_the_one_int4_copy():
    """One quantization of each weight for every row count: a row's output is the same bits
    alone or in a step of 33 (batch-invariant), and the layer holds only the int4 blocks."""
    weight = q4_1_like(96, 256)
    layer = make_layer(weight)
    assert layer.weight.numel() == 0  # the packed copy replaces the bf16 matrix
    assert [type(layout) for layout in layer.packed.layouts] == [Int4Blocks]
    assert layer.packed.layouts[0].max_rows is None
    x = torch.randn(33, 256, dtype=torch.bfloat16)
    out = layer(x)
    assert all(torch.equal(layer(x[r:r + 1])[0], out[r]) for r in (0, 8, 9, 32))
    expected = x.float() @ weight.t()
    assert (out.float() - expected).abs().max() < 0.03 * expected.abs().max()


def test_narrow_layers_stay_dense():
    weight = torch.randn(8, 48)
    layer = make_layer(weight, torch.float32)
    assert [type(layout) for layout in layer.packed.layouts] == [FLOAT32_DENSE]
    x = torch.randn(1, 48)
    assert torch.allclose(layer(x), x @ weight.t())


def test_without_the_int8_gemm_bfloat16_still_runs_the_int4_copy(monkeypatch):
    """The int4 blocks serve every step on any CPU the kernels build for (float path without VNNI)."""
    monkeypatch.setattr(cpu, "int8_gemm_available", lambda: False)
    if not cpu.available():
        pytest.skip("fw's CPU kernels could not be built here")
    layer = make_layer(q4_1_like(96, 256))
    assert [type(layout) for layout in layer.packed.layouts] == [Int4Blocks]


def test_refuses_what_it_cannot_run():
    layer = Linear(64, 8, dtype=torch.float16, quant_method=Int4WeightOnly())
    with pytest.raises(ValueError, match="CPU, in bfloat16 or float32"):
        layer.post_load()


@pytest.fixture(scope="module")
def q4_gguf(tmp_path_factory, tiny_checkpoint_factory):
    from tests.tiny_gguf import make_tiny_gguf

    checkpoint = tiny_checkpoint_factory("LlamaForCausalLM")
    return make_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-q4_1.gguf", checkpoint, tensor_type="Q4_1")


def quant_methods(llm) -> set[str]:
    return {type(m.quant_method).__name__ for m in llm.engine.loaded.model.modules() if isinstance(m, Linear)}


def test_a_4bit_gguf_can_be_served_with_int4_weights_in_bfloat16(q4_gguf):
    """By request: the file's own default is ``gguf`` (tests/plugins/quantization/test_gguf.py)."""
    from fw import LLM, SamplingParams

    quantized = LLM(str(q4_gguf), dtype="bfloat16", quantization="int4")
    assert quant_methods(quantized) == {"Int4WeightOnly"}
    dense = LLM(str(q4_gguf), dtype="bfloat16", quantization="none")
    assert quant_methods(dense) == {"QuantizationMethod"}
    assert quant_methods(LLM(str(q4_gguf), dtype="float32")) == {"QuantizationMethod"}
    # The same 4-bit weights either way: the prompt's logprobs agree closely.
    params = SamplingParams(max_tokens=1, prompt_logprobs=0)
    prompt = "Once upon a time there was a little robot"
    a, b = (llm.generate(prompt, params, use_tqdm=False)[0] for llm in (quantized, dense))
    for position, token in enumerate(a.prompt_token_ids[1:], start=1):
        assert abs(a.prompt_logprobs[position][token].logprob - b.prompt_logprobs[position][token].logprob) < 0.05
