"""GPTQ and AWQ checkpoints through the engine: a tiny checkpoint quantized and packed by
the test, served by fw as transformers serves the dense weights it stands for (float32),
and in bfloat16 with the int4 method on the checkpoint's own grid."""

from __future__ import annotations

import pytest
import torch

from fw.layers.linear import Linear
from fw.errors import ModelLoadError
from fw_builtins.quantization.int4_groups import FP16_EPS
from fw.layers.packed import Int4Blocks
from fw_kernels import cpu
from tests.core.engine.conftest import hf_greedy, hf_logprobs
from tests.quantized_checkpoints import dense_twin, make_quantized_checkpoint

PROMPT = "Once upon a time there was a little robot. It lived in a quiet house"

VARIANTS = {
    "gptq-asym-32": dict(method="gptq", group_size=32),
    "gptq-sym-64-v2": dict(method="gptq", group_size=64, symmetric=True, v2=True),
    "gptq-act-order-32": dict(method="gptq", group_size=32, act_order=True),
    "awq-64": dict(method="awq", group_size=64),
}


@pytest.fixture(scope="module", params=VARIANTS)
def quantized(request, tiny_checkpoint_factory, tmp_path_factory):
    """(the quantized folder, its dense twin for transformers, the reference weights)."""
    source = tiny_checkpoint_factory("LlamaForCausalLM")
    root = tmp_path_factory.mktemp(request.param)
    folder, reference = make_quantized_checkpoint(root / "quantized", source, **VARIANTS[request.param])
    return request.param, folder, dense_twin(root / "dense", folder, reference), reference


def test_float32_serves_the_dense_weights_as_transformers_does(quantized):
    from fw import LLM, SamplingParams

    _, folder, dense, _ = quantized
    llm = LLM(str(folder), dtype="float32")
    out = llm.generate(PROMPT, SamplingParams(max_tokens=8, temperature=0, ignore_eos=True, logprobs=0),
                       use_tqdm=False)[0].outputs[0]
    assert list(out.token_ids) == hf_greedy(dense, PROMPT, 8)
    expected = hf_logprobs(dense, PROMPT, list(out.token_ids))
    for step, token in enumerate(out.token_ids):
        assert abs(out.logprobs[step][token].logprob - expected[step, token].item()) < 1e-4


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
def test_bfloat16_packs_the_checkpoints_own_levels(quantized):
    from fw import LLM, SamplingParams

    name, folder, _, reference = quantized
    llm = LLM(str(folder), dtype="bfloat16")
    model = llm.engine.loaded.model
    layers = {n: m for n, m in model.named_modules() if isinstance(m, Linear)}
    assert {type(m.quant_method).__name__ for m in layers.values()} == {"Int4WeightOnly"}
    q, k, v = (reference[f"model.layers.0.self_attn.{p}_proj"] for p in "qkv")
    expected = torch.cat([q, k, v])
    blocks = layers["model.layers.0.self_attn.qkv_proj"].packed.layout_for(1)
    assert isinstance(blocks, Int4Blocks)
    served = blocks.dequantize()
    error = (served - expected).abs().max().item()
    if "act-order" in name:  # no grid: fw's min-max packing, within half a level of each 32-group
        assert error < expected.abs().max().item() / 15
    elif "sym" in name.split("-"):  # -8 * scale is a float16 too: nothing rounds
        assert torch.equal(served, expected)
    else:  # the checkpoint's levels and scales; the minimum within its float16 rounding
        assert error <= 16 * FP16_EPS * expected.abs().max().item()
    # The same 4-bit weights as the dense bf16 path: the prompt's logprobs agree closely.
    dense = LLM(str(folder), dtype="bfloat16", quantization="none")
    params = SamplingParams(max_tokens=1, prompt_logprobs=0)
    a, b = (one.generate(PROMPT, params, use_tqdm=False)[0] for one in (llm, dense))
    for position, token in enumerate(a.prompt_token_ids[1:], start=1):
        assert abs(a.prompt_logprobs[position][token].logprob - b.prompt_logprobs[position][token].logprob) < 0.05


def test_an_unsupported_method_is_named(tiny_checkpoint_factory, tmp_path):
    import json
    import shutil

    from fw import LLM

    folder = tmp_path / "fp8"
    shutil.copytree(tiny_checkpoint_factory("LlamaForCausalLM"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "dynamic"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"config.json: quantization_config: method 'fp8' is not one fw can load"):
        LLM(str(folder), dtype="float32")
