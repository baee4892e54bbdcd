"""The embedded SmolLM2-135M-Instruct Q4_1 GGUF against transformers' reading of it."""

from __future__ import annotations

import time

import pytest
import torch

from fw.model_loader.default_model import default_model_path
from tests.plugins.loaders.helpers import loader_for

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France? Answer in one word, s'il vous plaît 🙂"},
]


@pytest.fixture(scope="module")
def smollm2():
    return default_model_path()


@pytest.mark.slow
def test_config_matches_transformers(smollm2):
    from transformers import AutoConfig

    ours = loader_for(smollm2).hf_config()
    theirs = AutoConfig.from_pretrained(smollm2.parent, gguf_file=smollm2.name)
    assert ours.architectures == ["LlamaForCausalLM"]
    ignored = {"_name_or_path", "_model_name_or_path", "architectures"}
    assert ({k: v for k, v in ours.to_dict().items() if k not in ignored}
            == {k: v for k, v in theirs.to_dict().items() if k not in ignored})


@pytest.mark.slow
def test_tokenizer_encodes_a_chat_like_transformers(smollm2, fw_cache_dir):
    from transformers import AutoTokenizer

    ours = loader_for(smollm2).tokenizer()
    theirs = AutoTokenizer.from_pretrained(smollm2.parent, gguf_file=smollm2.name)
    for generation_prompt in (True, False):
        text = ours.apply_chat_template(MESSAGES, add_generation_prompt=generation_prompt, tokenize=False)
        assert text == theirs.apply_chat_template(MESSAGES, add_generation_prompt=generation_prompt, tokenize=False)
        assert ours(text)["input_ids"] == theirs(text)["input_ids"]
    assert (ours.eos_token, ours.bos_token, len(ours)) == (theirs.eos_token, theirs.bos_token, len(theirs))


def test_cached_tokenizer_load_is_fast(smollm2, fw_cache_dir):
    loader_for(smollm2).tokenizer()  # converts, unless an earlier test already did
    start = time.perf_counter()
    tokenizer = loader_for(smollm2).tokenizer()
    assert time.perf_counter() - start < 2.0
    assert tokenizer.apply_chat_template(MESSAGES[1:], add_generation_prompt=True, tokenize=False).endswith(
        "<|im_start|>assistant\n")


@pytest.mark.slow
def test_dequantized_tensors_equal_transformers(smollm2):
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(smollm2.parent, gguf_file=smollm2.name)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    theirs = load_gguf_checkpoint(str(smollm2), return_tensors=True, model_to_load=model)["tensors"]
    ours = dict(loader_for(smollm2).iter_weights())
    assert sorted(ours) == sorted(theirs)
    for name in ("model.embed_tokens.weight",  # Q8_0
                 "model.layers.0.self_attn.q_proj.weight",  # Q4_1, rows permuted by llama.cpp
                 "model.layers.7.self_attn.k_proj.weight",
                 "model.layers.29.mlp.down_proj.weight",
                 "model.layers.3.input_layernorm.weight",  # F32
                 "model.norm.weight"):
        mine = ours[name]  # a quantized tensor comes as its blocks (a QuantizedMatrix)
        mine = mine if isinstance(mine, torch.Tensor) else mine.dequantize()
        assert torch.equal(mine, theirs[name]), name
