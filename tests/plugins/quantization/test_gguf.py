"""``gguf``: a quantized GGUF file served from its own levels. Chosen by default for such a
file in bfloat16 on the CPU; every projection runs from block layouts holding the file's
levels (exactly the file's values for the exact types), an embedding kept quantized is
shared with its tied head; in float32 with ``--quantization none`` the weights are exactly
the file's dequantized values; a type fw cannot read is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fw import LLM, SamplingParams
from fw.errors import ModelLoadError
from fw.layers.linear import Linear
from fw.layers.packed import F32Panels, Int4Blocks, Int8Blocks, PlainWeight
from fw_builtins.loaders.gguf_blocks import EXACT
from fw_builtins.loaders.gguf_reader import GGUFFile
from fw_builtins.quantization.gguf import GGUFBlocks
from fw_kernels import cpu
from tests.tiny_gguf import make_tiny_gguf

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")

TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL"]
#: K-quant and IQ4_NL rows are whole 256-weight super-blocks (IQ4_NL's random blocks need no data)
WIDE = {"hidden_size": 256, "head_dim": 64, "intermediate_size": 512}


@pytest.fixture(scope="module")
def gguf_file(tiny_checkpoint_factory, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf-method")

    def build(tensor_type: str, architecture: str = "LlamaForCausalLM", **overrides):
        sizes = WIDE if tensor_type.endswith("_K") or tensor_type.startswith("IQ") else {}
        checkpoint = tiny_checkpoint_factory(architecture, **sizes, **overrides)
        path = folder / f"{architecture}-{tensor_type}-{abs(hash(repr(sorted(overrides.items()))))}.gguf"
        if not path.exists():
            make_tiny_gguf(path, checkpoint, tensor_type=tensor_type)
        return path, checkpoint

    return build


def file_matrices(path) -> dict[str, torch.Tensor]:
    """Each quantized matrix of the file as gguf-py dequantizes its bytes, by GGUF name."""
    from gguf.quants import dequantize

    gguf = GGUFFile(path)
    return {t.name: torch.from_numpy(np.array(dequantize(gguf.raw(t).reshape(t.torch_shape[0], -1), t.type)))
            for t in gguf.tensors if len(t.shape) == 2}


def linears(llm) -> dict[str, Linear]:
    return {name: m for name, m in llm.engine.loaded.model.named_modules() if isinstance(m, Linear)}


@pytest.mark.parametrize("tensor_type", TYPES)
def test_a_quantized_file_is_served_from_its_own_levels(gguf_file, tensor_type):
    from gguf import GGMLQuantizationType as T

    path, _ = gguf_file(tensor_type)
    llm = LLM(str(path), dtype="bfloat16")
    layers = linears(llm)
    assert {type(m.quant_method) for m in layers.values()} == {GGUFBlocks}
    small = Int4Blocks if tensor_type in ("Q4_0", "Q4_1", "Q4_K") else Int8Blocks
    matrices = file_matrices(path)
    attention = layers["model.layers.0.self_attn.o_proj"].packed.layout_for(1)
    # the file's own levels for every step (one quantization: batch-invariant)
    assert [type(layout) for layout in layers["model.layers.0.self_attn.o_proj"].packed.layouts] == [small]
    assert attention.max_rows is None
    if T[tensor_type] in EXACT:  # the file's values, bit for bit
        assert torch.equal(attention.dequantize(), matrices["blk.0.attn_output.weight"])
    else:  # within a rounding of the file's values (tests/plugins/loaders/test_gguf_blocks.py bounds it)
        torch.testing.assert_close(attention.dequantize(), matrices["blk.0.attn_output.weight"],
                                   rtol=0, atol=0.01 * matrices["blk.0.attn_output.weight"].abs().max())
    assert llm.engine.runner.fused_decode is not None  # every layer fuses from the blocks
    outputs = llm.generate(["The capital of France is"], SamplingParams(max_tokens=4, temperature=0.0),
                           use_tqdm=False)
    assert len(outputs[0].outputs[0].token_ids) == 4


def test_resident_weights_stay_near_the_file_size(gguf_file):
    """The blocks every step reads take about what the file does (a Q4_K group of 32
    weights: 20 bytes here, 18 in the file), not the bf16 matrix's 64; ``gguf_lean`` (the
    name of that behaviour before it became the default) holds the same."""
    path, _ = gguf_file("Q4_K")
    stored = sum(t.nbytes for t in GGUFFile(path).tensors if t.name.startswith("blk.") and len(t.shape) == 2)
    held = {q: {name: m.packed for name, m in linears(LLM(str(path), dtype="bfloat16", quantization=q)).items()
                if name != "lm_head"} for q in (None, "gguf_lean", "none")}
    default = sum(w.nbytes for w in held[None].values())
    assert all(len(w.layouts) == 1 and w.layouts[0].max_rows is None for w in held[None].values())
    assert default <= 1.15 * stored
    assert sum(w.nbytes for w in held["gguf_lean"].values()) == default
    assert default < 0.4 * sum(w.nbytes for w in held["none"].values())


def _bytes(layout) -> int:
    return sum(t.nbytes for t in vars(layout).values() if isinstance(t, torch.Tensor))


def test_float32_plain_weights_are_exactly_the_files_values(gguf_file):
    path, _ = gguf_file("Q4_K")
    llm = LLM(str(path), dtype="float32", quantization="none")
    layers = linears(llm)
    matrices = file_matrices(path)
    qkv = layers["model.layers.1.self_attn.qkv_proj"].packed.layout_for(1)
    assert type(qkv) in (PlainWeight, F32Panels)  # float32 dense: torch's, or fw's fixed-order GEMM
    # llama.cpp permutes llama's q/k rows; the loader puts them back, as transformers does
    from fw_builtins.loaders.gguf_loader import unpermute

    config = llm.engine.loaded.hf_config
    expected = torch.cat([unpermute(matrices["blk.1.attn_q.weight"], config.num_attention_heads),
                          unpermute(matrices["blk.1.attn_k.weight"], config.num_key_value_heads),
                          matrices["blk.1.attn_v.weight"]])
    assert torch.equal(qkv.dequantize(), expected)
    down = layers["model.layers.0.mlp.down_proj"].packed.layout_for(1)
    assert torch.equal(down.dequantize(), matrices["blk.0.ffn_down.weight"])


def test_a_tied_embedding_is_looked_up_from_the_blocks_its_head_runs(gguf_file):
    path, checkpoint = gguf_file("Q8_0", tie_word_embeddings=True)
    llm = LLM(str(path), dtype="bfloat16")
    model = llm.engine.loaded.model
    embedding = model.model.embed_tokens
    assert model.lm_head.packed is embedding.packed  # one copy
    assert embedding.weight.numel() == 0
    ids = torch.tensor([0, 5, 447, 5])
    expected = file_matrices(path)["token_embd.weight"][ids].to(torch.bfloat16)
    assert torch.equal(embedding(ids), expected)
    reference = load_file(checkpoint / "model.safetensors")["model.embed_tokens.weight"]
    torch.testing.assert_close(embedding(ids).float(), reference[ids], rtol=0, atol=0.01)


def test_quantized_and_plain_bf16_agree_on_the_prompt(gguf_file):
    """The prompt runs through the file's blocks as decode steps do; they are the file's
    weights, as the dense bf16 model is."""
    path, _ = gguf_file("Q5_0")
    params = SamplingParams(max_tokens=1, prompt_logprobs=0)
    prompt = "Once upon a time there was a little robot"
    quantized, dense = (LLM(str(path), dtype="bfloat16", quantization=q).generate(prompt, params, use_tqdm=False)[0]
                        for q in (None, "none"))
    assert len(quantized.prompt_token_ids) > cpu.MAX_GEMV_ROWS
    for position, token in enumerate(quantized.prompt_token_ids[1:], start=1):
        assert abs(quantized.prompt_logprobs[position][token].logprob
                   - dense.prompt_logprobs[position][token].logprob) < 0.05


def test_float_files_and_float32_serving_stay_plain(gguf_file):
    path, _ = gguf_file("F16")
    assert {type(m.quant_method).__name__ for m in linears(LLM(str(path), dtype="bfloat16")).values()} == {
        "QuantizationMethod"}
    quantized, _ = gguf_file("Q4_0")
    assert {type(m.quant_method).__name__ for m in linears(LLM(str(quantized), dtype="float32")).values()} == {
        "QuantizationMethod"}


def test_a_type_fw_cannot_read_is_refused_by_name(tiny_checkpoint_factory, tmp_path):
    path = make_tiny_gguf(tmp_path / "q8_1.gguf", tiny_checkpoint_factory("LlamaForCausalLM"), tensor_type="Q8_0",
                          tensor_types={"blk.0.attn_q.weight": "Q8_1"})
    with pytest.raises(ModelLoadError, match=r"'blk.0.attn_q.weight' \(Q8_1\)"):
        LLM(str(path), dtype="bfloat16")
