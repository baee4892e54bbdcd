"""The GGUF loader on tiny files written in the test: tensors, config and tokenizer.

Two independent references: the checkpoint the file was written from (exact for F32,
which checks names and the q/k un-permutation) and transformers' own GGUF reading
(``load_gguf_checkpoint``), which must give the same tensors for every quant type.
"""

from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import load_file

from tests.plugins.loaders.helpers import assert_same_tensors, loader_for, read_all
from tests.tiny_gguf import make_tiny_gguf


@pytest.fixture(scope="module")
def gguf_factory(tiny_checkpoint_factory, tmp_path_factory):
    """``build(tensor_type="F32", architecture=..., **overrides)`` -> a tiny .gguf file."""
    folder = tmp_path_factory.mktemp("gguf")

    def build(tensor_type="F32", architecture="LlamaForCausalLM", **overrides):
        checkpoint = tiny_checkpoint_factory(architecture, **overrides)
        name = f"{architecture}-{tensor_type}-{abs(hash(repr(sorted(overrides.items()))))}.gguf"
        path = folder / name
        if not path.exists():
            make_tiny_gguf(path, checkpoint, tensor_type=tensor_type)
        return path, checkpoint

    return build


def transformers_gguf(path):
    """What transformers reads from ``path``: its config and dequantized tensors."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return config, load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"]


@pytest.mark.parametrize("architecture, overrides", [
    ("LlamaForCausalLM", {}),
    ("LlamaForCausalLM", {"tie_word_embeddings": True}),
    ("Qwen2ForCausalLM", {}),
    ("Qwen3ForCausalLM", {}),
])
def test_f32_file_gives_back_the_checkpoint(gguf_factory, architecture, overrides):
    path, checkpoint = gguf_factory("F32", architecture, **overrides)
    assert type(loader_for(path)).__name__ == "GGUFLoader"
    assert_same_tensors(read_all(path), load_file(checkpoint / "model.safetensors"))


@pytest.mark.parametrize("tensor_type", ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"])
def test_quantized_tensors_equal_transformers(gguf_factory, tensor_type):
    # K-quant rows are 256 values long, so those need a wider model.
    wide = {"hidden_size": 256, "head_dim": 64, "intermediate_size": 512} if "_K" in tensor_type else {}
    path, _ = gguf_factory(tensor_type, **wide)
    _, expected = transformers_gguf(path)
    actual = read_all(path)
    assert sorted(actual) == sorted(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name].float(), tensor, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("architecture", ["LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"])
def test_config_matches_transformers_and_the_checkpoint(gguf_factory, architecture):
    path, checkpoint = gguf_factory("Q8_0", architecture)
    config = loader_for(path).hf_config()
    assert config.architectures == [architecture]
    expected, _ = transformers_gguf(path)
    ours, theirs = config.to_dict(), expected.to_dict()
    # transformers ignores qwen3's attention.key_length and falls back to head_dim 128;
    # fw reads it, so fw's head_dim is the checkpoint's.
    ignored = {"_name_or_path", "_model_name_or_path", "architectures", "head_dim"}
    assert {k: v for k, v in ours.items() if k not in ignored} == {k: v for k, v in theirs.items() if k not in ignored}
    source = loader_for(checkpoint).hf_config()
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "intermediate_size", "vocab_size", "tie_word_embeddings", "eos_token_id"):
        assert getattr(config, key) == getattr(source, key), key


def test_tokenizer_matches_the_checkpoint_and_transformers(gguf_factory, fw_cache_dir):
    from transformers import AutoTokenizer

    path, checkpoint = gguf_factory("Q8_0")
    ours = loader_for(path).tokenizer()
    messages = [{"role": "user", "content": "What is the capital of France? naïve café 🙂"}]
    ids = ours.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    for reference in (AutoTokenizer.from_pretrained(checkpoint),
                      AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)):
        assert ids == reference.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert ours.eos_token == "<|im_end|>"
    assert ours.decode(ids) == ours.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def test_tokenizer_cache_hit_skips_the_file_and_a_changed_file_misses(gguf_factory, fw_cache_dir,
                                                                       tmp_path, monkeypatch):
    import shutil

    from fw_builtins.loaders import gguf_metadata

    path = tmp_path / "copy.gguf"
    shutil.copy(gguf_factory("Q8_0")[0], path)
    loader_for(path).tokenizer()
    cached = gguf_metadata.tokenizer_cache_dir(path)
    assert cached.is_dir() and str(cached).startswith(str(fw_cache_dir))

    def no_conversion(*_args):
        raise AssertionError("a cache hit must not convert")

    monkeypatch.setattr(gguf_metadata, "convert_tokenizer", no_conversion)
    start = time.perf_counter()
    assert len(loader_for(path).tokenizer()) == 448
    assert time.perf_counter() - start < 2.0
    path.touch()
    assert gguf_metadata.tokenizer_cache_dir(path) != cached
    with pytest.raises(AssertionError, match="must not convert"):
        loader_for(path).tokenizer()


def test_gguf_reads_no_generation_defaults(gguf_factory):
    path, _ = gguf_factory()
    assert loader_for(path).generation_config() == {}


# -- Gemma: llama.cpp's names, its (1 + w) norms, the window pattern -----------------------


#: llama.cpp writes no output matrix for Gemma 2 (its models are tied); Gemma 3 may have one
GEMMA = {"Gemma2ForCausalLM": {"tie_word_embeddings": True}, "Gemma3ForCausalLM": {}}
#: Phi-3 with merged q/k/v and gate/up, 3/4 of each head rotating (no LongRoPE factors:
#: fw's GGUF loader refuses files with them)
PHI3 = {"rope_scaling": None}


@pytest.mark.parametrize("architecture", sorted(GEMMA))
def test_gemma_tensors_equal_transformers(gguf_factory, architecture):
    path, _ = gguf_factory("Q8_0", architecture, query_pre_attn_scalar=16, **GEMMA[architecture])
    _, expected = transformers_gguf(path)
    actual = read_all(path)
    assert sorted(actual) == sorted(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name].float(), tensor, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("architecture", [*sorted(GEMMA), "Phi3ForCausalLM"])
def test_a_gemma_or_phi3_file_generates_the_checkpoints_tokens(gguf_factory, architecture):
    """The file's config (window, pattern, soft caps, head size) and tensors make the
    checkpoint's model: transformers' greedy tokens on the checkpoint, in float32. (GGUF
    stores no query_pre_attn_scalar: fw takes head_dim, as llama.cpp does, so the
    checkpoint here has that scale.)"""
    from fw import LLM, SamplingParams
    from tests.core.engine.conftest import PROMPTS, hf_greedy

    if architecture in GEMMA:
        path, checkpoint = gguf_factory("F32", architecture, query_pre_attn_scalar=16, **GEMMA[architecture])
        config = loader_for(path).hf_config()
        assert config.layer_types == ["sliding_attention", "full_attention"] and config.sliding_window == 6
    else:
        path, checkpoint = gguf_factory("F32", architecture, **PHI3)
        assert loader_for(path).hf_config().partial_rotary_factor == 0.75
    llm = LLM(str(path), dtype="float32", quantization="none")
    outputs = llm.generate(PROMPTS[:3], SamplingParams(max_tokens=12, min_tokens=12, temperature=0.0),
                           use_tqdm=False)
    assert [o.outputs[0].token_ids for o in outputs] == [hf_greedy(checkpoint, p, 12) for p in PROMPTS[:3]]
