"""Pooling requests in the engine beside generation: one scheduler, one token budget, the
same steps; a causal model's prompt pooled across chunks; the prefix cache; aborts."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from fw.config import EngineConfig
from fw.engine.llm_engine import LLMEngine
from fw.engine.outputs import PoolingRequestOutput, RequestOutput
from fw.engine.sampling_params import SamplingParams
from fw.errors import ConfigurationError, NotSupportedError
from fw.pooling.params import PoolingParams
from tests.core.engine.conftest import PROMPTS


def engine(path, **options) -> LLMEngine:
    return LLMEngine.from_config(EngineConfig.from_options(model=str(path), dtype="float32", **options))


@functools.lru_cache(maxsize=4)
def _hf(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


@torch.no_grad()
def hf_states(path, prompt: str) -> np.ndarray:
    """transformers' last hidden states (after the final norm) of every prompt token."""
    model, tok = _hf(str(path))
    return model.model(tok(prompt, return_tensors="pt").input_ids).last_hidden_state[0].numpy()


def run(llm: LLMEngine) -> dict[str, object]:
    finals = {}
    while llm.has_unfinished_requests():
        for output in llm.step():
            if output.finished:
                finals[output.request_id] = output
    return finals


def test_embeddings_and_generation_share_steps(tiny_llama):
    llm = engine(tiny_llama, enable_embeddings=True)
    assert llm.model_info().tasks == ["generate", "embed", "encode"]
    for i, prompt in enumerate(PROMPTS[:2]):
        llm.add_request(f"gen{i}", prompt, SamplingParams(max_tokens=4, temperature=0, ignore_eos=True))
        llm.add_request(f"emb{i}", prompt, PoolingParams())
    first = llm.step()  # every prompt fits the budget: one step computes all four
    assert {type(o) for o in first} == {RequestOutput, PoolingRequestOutput}
    pooled = {o.request_id: o for o in first if isinstance(o, PoolingRequestOutput)}
    assert set(pooled) == {"emb0", "emb1"}
    for i, prompt in enumerate(PROMPTS[:2]):
        last = hf_states(tiny_llama, prompt)[-1]
        np.testing.assert_allclose(pooled[f"emb{i}"].outputs.data, last / np.linalg.norm(last), atol=2e-5)
    finals = run(llm)
    assert all(len(finals[f"gen{i}"].outputs[0].token_ids) == 4 for i in range(2))


def test_a_causal_prompt_split_into_chunks_pools_like_one_step(tiny_llama):
    prompt = PROMPTS[2]
    options = dict(enable_embeddings=True, pooler_config={"pooling_type": "MEAN", "normalize": False})
    chunked = engine(tiny_llama, max_num_batched_tokens=8, **options)
    assert len(chunked.tokenizer.encode(prompt)) > 16  # three steps or more
    chunked.add_request("a", prompt, PoolingParams())
    steps = 0
    while chunked.has_unfinished_requests():
        outputs = chunked.step()
        steps += 1
    assert steps >= 3
    np.testing.assert_allclose(outputs[0].outputs.data, hf_states(tiny_llama, prompt).mean(0), atol=2e-5)


def test_pooling_computes_the_whole_prompt_whatever_the_prefix_cache_holds(tiny_llama):
    """The same text gives the same vector, bit for bit, however often it was asked before;
    generation still finds the prefix a pooling request left in the cache."""
    prompt = PROMPTS[2]
    llm = engine(tiny_llama, enable_embeddings=True)
    llm.add_request("first", prompt, PoolingParams())
    first = run(llm)["first"].outputs.data
    before = llm.stats().prefix_cache_hits
    llm.add_request("again", prompt, PoolingParams())
    np.testing.assert_array_equal(run(llm)["again"].outputs.data, first)
    assert llm.stats().prefix_cache_hits == before
    llm.add_request("gen", prompt, SamplingParams(max_tokens=1))
    run(llm)
    assert llm.stats().prefix_cache_hits > before


def test_an_aborted_pooling_request_ends_without_an_output(tiny_llama):
    llm = engine(tiny_llama, enable_embeddings=True)
    llm.add_request("x", PROMPTS[0], PoolingParams())
    (output,) = llm.abort_request("x")
    assert isinstance(output, PoolingRequestOutput) and output.finished and output.outputs is None
    assert not llm.has_unfinished_requests()


def test_convert_embed_turns_a_generative_model_into_an_embedding_model(tiny_llama):
    llm = engine(tiny_llama, convert="embed")
    assert llm.model_info().runner == "pooling" and llm.model_info().tasks == ["embed", "encode"]
    llm.add_request("e", PROMPTS[0], PoolingParams())
    last = hf_states(tiny_llama, PROMPTS[0])[-1]
    np.testing.assert_allclose(run(llm)["e"].outputs.data, last / np.linalg.norm(last), atol=2e-5)
    with pytest.raises(NotSupportedError, match="runs the pooling runner"):
        llm.add_request("g", PROMPTS[0], SamplingParams())


def test_an_encoder_needs_a_budget_of_a_whole_prompt(tiny_checkpoint_factory):
    with pytest.raises(ConfigurationError, match="an encoder computes each prompt in one step"):
        engine(tiny_checkpoint_factory("BertModel"), max_num_batched_tokens=64, max_model_len=128)
