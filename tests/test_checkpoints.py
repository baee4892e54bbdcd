"""The tiny checkpoints every engine test relies on: transformers must load them as-is."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.checkpoints import ARCHITECTURES, SPECIAL_TOKENS, VOCAB_SIZE, make_tiny_checkpoint


@pytest.mark.parametrize("architecture", sorted(a for a in ARCHITECTURES if a.endswith("ForCausalLM")))
def test_transformers_loads_and_generates(tiny_checkpoint_factory, architecture):
    folder = tiny_checkpoint_factory(architecture)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == [architecture]
    assert config["vocab_size"] == VOCAB_SIZE
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )["input_ids"]
    out = model.generate(ids, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert out.shape == (1, ids.shape[1] + 5)


@pytest.mark.parametrize("architecture", sorted(a for a in ARCHITECTURES if not a.endswith("ForCausalLM")))
def test_transformers_loads_the_encoders_and_their_framing(tiny_checkpoint_factory, architecture):
    import transformers

    folder = tiny_checkpoint_factory(architecture)
    model = getattr(transformers, architecture).from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pair = tokenizer("What is the capital?", "Paris.", return_tensors="pt")
    ids, types = pair["input_ids"][0].tolist(), pair["token_type_ids"][0].tolist()
    assert ids[0] == 1 and ids[-1] == 2 and ids.count(2) == 2  # [CLS] a [SEP] b [SEP]
    assert types == [0] * (ids.index(2) + 1) + [1] * (len(ids) - ids.index(2) - 1)
    with torch.no_grad():
        assert model(**pair)[0].isfinite().all()


def test_tokenizer_round_trips_and_has_chatml(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    assert len(tokenizer) == VOCAB_SIZE
    assert tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == [0, 1, 2]
    assert tokenizer.eos_token == "<|im_end|>"
    for text in ("The capital of France is Paris.", "naïve café 🙂 — 3.14", "  two  spaces\n"):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text
    ids = tokenizer.encode("The capital of France is Paris.", add_special_tokens=False)
    assert len(ids) < 10  # merges were learned: common words are single tokens
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_same_arguments_same_weights_and_options_apply(tmp_path):
    a = load_file(make_tiny_checkpoint(tmp_path / "a", seed=3) / "model.safetensors")
    b = load_file(make_tiny_checkpoint(tmp_path / "b", seed=3) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # norm weights are random too, so a model that skips loading them is caught
    assert not torch.all(a["model.norm.weight"] == 1)

    tied = make_tiny_checkpoint(tmp_path / "tied", tie_word_embeddings=True, dtype=torch.bfloat16)
    weights = load_file(tied / "model.safetensors")
    assert "lm_head.weight" not in weights
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}

    qwen2 = load_file(make_tiny_checkpoint(tmp_path / "q2", "Qwen2ForCausalLM") / "model.safetensors")
    assert "model.layers.0.self_attn.q_proj.bias" in qwen2
    qwen3 = load_file(make_tiny_checkpoint(tmp_path / "q3", "Qwen3ForCausalLM") / "model.safetensors")
    assert "model.layers.0.self_attn.q_norm.weight" in qwen3
