"""all-MiniLM-L6-v2 through fw's pooling runner against sentence-transformers (the oracle):
several sentences, a batch of very different lengths, token-id input, a sentence alone and
inside a batch, and the pooling errors of the engine's admission."""

from __future__ import annotations

import numpy as np
import pytest

from fw.errors import ContextLengthError, InvalidParameterError, NotSupportedError
from fw.pooling.params import PoolingParams

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is eating food.",
    "hello",
    "Embeddings turn text into vectors that can be compared with cosine similarity, which makes semantic search "
    "possible without matching any keyword at all.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "What is the capital of France? The capital of France is Paris, a city on the river Seine.",
]
#: one word up to ~200 tokens, in one batch
MIXED = ["Hi.", "Two words", " ".join(["The weather is nice and warm this week."] * 20), "Paris is lovely in spring."]


@pytest.fixture(scope="module")
def fp32(minilm_dir):
    from fw import LLM

    return LLM(str(minilm_dir), dtype="float32")


@pytest.fixture(scope="module")
def default(minilm_dir):
    """fw's default dtype (bfloat16 on this CPU)."""
    from fw import LLM

    return LLM(str(minilm_dir))


def embed(llm, prompts, **params) -> np.ndarray:
    return np.stack([o.outputs.data for o in llm.embed(prompts, use_tqdm=False, **params)])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_the_folder_sets_mean_pooling_normalisation_and_its_length(fp32):
    info = fp32.engine.model_info()
    assert info.runner == "pooling" and info.max_model_len == 256  # sentence_bert_config.json
    assert info.pooling.poolers["embed"] == "MEAN" and info.pooling.normalize and info.pooling.whole_prompts
    assert np.allclose(np.linalg.norm(embed(fp32, SENTENCES), axis=-1), 1, atol=1e-6)


def test_embeddings_equal_sentence_transformers_in_float32(fp32, minilm_oracle):
    assert cosines(embed(fp32, SENTENCES), minilm_oracle.encode(SENTENCES)).min() >= 0.99999


def test_embeddings_equal_sentence_transformers_in_the_default_dtype(default, minilm_oracle):
    import torch

    from fw.engine.model_builder import resolve_dtype

    assert default.engine.loaded.dtype == resolve_dtype("auto", torch.device("cpu"))
    assert cosines(embed(default, SENTENCES), minilm_oracle.encode(SENTENCES)).min() >= 0.9999


def test_a_batch_of_mixed_lengths(fp32, default, minilm_oracle):
    lengths = [len(fp32.get_tokenizer().encode(s)) for s in MIXED]
    assert min(lengths) <= 4 and max(lengths) >= 150
    want = minilm_oracle.encode(MIXED, batch_size=len(MIXED))
    assert cosines(embed(fp32, MIXED), want).min() >= 0.99999
    assert cosines(embed(default, MIXED), want).min() >= 0.9999


def test_token_id_input_equals_text_input(fp32, minilm_oracle):
    ids = [fp32.get_tokenizer().encode(s) for s in SENTENCES[:3]]
    from_ids = embed(fp32, [{"prompt_token_ids": i} for i in ids] + [ids[0]])
    assert cosines(from_ids[:3], minilm_oracle.encode(SENTENCES[:3])).min() >= 0.99999
    np.testing.assert_array_equal(from_ids[3], from_ids[0])


def test_a_sentence_alone_equals_the_sentence_inside_a_batch(default):
    alone = embed(default, [SENTENCES[3]])[0]
    batch = embed(default, SENTENCES + MIXED)
    assert cosines(alone[None], batch[3:4])[0] >= 0.99999


def test_the_admission_refuses_what_the_model_cannot_do(fp32):
    too_long = [101] + [1996] * 300 + [102]
    with pytest.raises(ContextLengthError, match="maximum context length is 256 tokens, but the input has 302"):
        fp32.embed([too_long], use_tqdm=False)
    cut = embed(fp32, [too_long], truncate_prompt_tokens=256)  # keeps the last 256 ids
    np.testing.assert_array_equal(cut, embed(fp32, [too_long[-256:]]))
    with pytest.raises(InvalidParameterError, match="the input is empty"):
        fp32.embed([[]], use_tqdm=False)
    with pytest.raises(InvalidParameterError, match="dimensions: this model does not support Matryoshka"):
        fp32.embed(["hello"], use_tqdm=False, dimensions=64)
    with pytest.raises(NotSupportedError, match="does not serve the 'classify' task: its pooling tasks are embed, "
                                                "encode"):
        fp32.classify(["hello"], use_tqdm=False)
    with pytest.raises(NotSupportedError, match="runs the pooling runner"):
        fp32.generate(["hello"], use_tqdm=False)


def test_matryoshka_dimensions_are_the_first_ones_normalised_again(minilm_dir, minilm_oracle):
    from fw import LLM

    llm = LLM(str(minilm_dir), dtype="float32", hf_overrides={"is_matryoshka": True})
    short = embed(llm, SENTENCES[:2], dimensions=128)
    assert short.shape == (2, 128) and np.allclose(np.linalg.norm(short, axis=-1), 1, atol=1e-6)
    assert cosines(short, minilm_oracle.encode(SENTENCES[:2])[:, :128]).min() >= 0.99999


def test_per_token_states_and_no_normalisation(fp32, minilm_oracle):
    states = fp32.encode(["A man is eating food."], PoolingParams("encode"), use_tqdm=False)[0].outputs.data
    want = minilm_oracle.encode(["A man is eating food."], output_value="token_embeddings")[0]
    assert states.shape == tuple(want.shape) and cosines(states, want.numpy()).min() >= 0.99999
    raw = embed(fp32, ["A man is eating food."], normalize=False)[0]
    np.testing.assert_allclose(raw, states.mean(0), rtol=1e-5, atol=1e-6)
