"""BERT, RoBERTa and XLM-RoBERTa encoders against transformers, on tiny random checkpoints:
every token's hidden state, a text pair's token types, and the classification heads."""

from __future__ import annotations

import shutil

import pytest
import torch

from fw.errors import ModelLoadError
from fw.pooling.params import PoolingParams
from tests.checkpoints import encoder_tokenizer

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello!", "What is the capital of France? Paris is."]
ENCODERS = ["BertModel", "RobertaModel", "XLMRobertaModel"]
CLASSIFIERS = ["BertForSequenceClassification", "RobertaForSequenceClassification",
               "XLMRobertaForSequenceClassification"]


def reference(path, architecture):
    import transformers

    return getattr(transformers, architecture).from_pretrained(path).eval()


@torch.no_grad()
def reference_states(model, text, pair=None):
    inputs = encoder_tokenizer()(text, pair, return_tensors="pt")
    return model(**inputs).last_hidden_state[0]


def states(llm, prompts, dtype=torch.float32):
    outputs = llm.encode(prompts, PoolingParams("encode", normalize=False), use_tqdm=False)
    return [torch.from_numpy(o.outputs.data) for o in outputs]


@pytest.mark.parametrize("architecture", ENCODERS)
def test_every_token_state_equals_transformers(tiny_checkpoint_factory, llm_factory, architecture):
    path = tiny_checkpoint_factory(architecture)
    model = reference(path, architecture)
    got = states(llm_factory(path), TEXTS)
    for text, mine in zip(TEXTS, got):
        torch.testing.assert_close(mine, reference_states(model, text), atol=2e-5, rtol=1e-4)


def test_a_pairs_token_types_reach_the_model(tiny_checkpoint_factory, llm_factory):
    path = tiny_checkpoint_factory("BertModel")
    encoded = encoder_tokenizer()("What is the capital of France?", "Paris is.")
    assert set(encoded["token_type_ids"]) == {0, 1}
    prompt = {"prompt_token_ids": encoded["input_ids"], "token_type_ids": encoded["token_type_ids"]}
    with_types, without = states(llm_factory(path), [prompt, {"prompt_token_ids": encoded["input_ids"]}])
    want = reference_states(reference(path, "BertModel"), "What is the capital of France?", "Paris is.")
    torch.testing.assert_close(with_types, want, atol=2e-5, rtol=1e-4)
    assert not torch.allclose(without, want, atol=1e-3)  # the types matter, so the test can fail


@pytest.mark.parametrize("architecture", CLASSIFIERS)
def test_classifier_logits_and_probabilities_equal_transformers(tiny_checkpoint_factory, llm_factory, architecture):
    path = tiny_checkpoint_factory(architecture, num_labels=3)
    model = reference(path, architecture)
    llm = llm_factory(path)
    with torch.no_grad():
        want = torch.cat([model(**encoder_tokenizer()(t, return_tensors="pt")).logits for t in TEXTS])
    logits = torch.stack([torch.from_numpy(o.outputs.data) for o in llm.classify(TEXTS, use_tqdm=False,
                                                                                 activation=False)])
    torch.testing.assert_close(logits, want, atol=2e-5, rtol=1e-4)
    probs = torch.stack([torch.from_numpy(o.outputs.data) for o in llm.classify(TEXTS, use_tqdm=False)])
    torch.testing.assert_close(probs, want.softmax(-1), atol=2e-6, rtol=1e-4)


def test_bfloat16_weights_with_float32_activations_stay_close(tiny_checkpoint_factory):
    from fw import LLM

    path = tiny_checkpoint_factory("BertModel")
    model = reference(path, "BertModel")
    for text, mine in zip(TEXTS, states(LLM(str(path), dtype="bfloat16"), TEXTS)):
        cosine = torch.nn.functional.cosine_similarity(mine, reference_states(model, text), dim=-1)
        assert cosine.min() > 0.999


def test_old_checkpoint_names_load(tiny_checkpoint_factory, llm_factory, tmp_path):
    """LayerNorm.gamma/beta (early BERT checkpoints) and a bert. prefix on a BertModel."""
    from safetensors.torch import load_file, save_file

    source = tiny_checkpoint_factory("BertModel")
    folder = shutil.copytree(source, tmp_path / "old")
    tensors = load_file(folder / "model.safetensors")
    renamed = {"bert." + name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"):
               tensor for name, tensor in tensors.items()}
    save_file(renamed, folder / "model.safetensors")
    torch.testing.assert_close(states(llm_factory(folder), TEXTS[:1])[0], states(llm_factory(source), TEXTS[:1])[0])


def test_relative_position_embeddings_are_refused(tiny_checkpoint_factory):
    from fw import LLM

    path = tiny_checkpoint_factory("BertModel", position_embedding_type="relative_key")
    with pytest.raises((ModelLoadError, ValueError), match="position_embedding_type 'relative_key' is not supported"):
        LLM(str(path), dtype="float32")
