"""Engine-test helpers: transformers as the oracle for greedy tokens and logprobs."""

from __future__ import annotations

import functools

import pytest
import torch

from tests.checkpoints import tiny_tokenizer

#: prompts of ragged lengths (3 to ~40 tokens with the tiny tokenizer)
PROMPTS = [
    "The capital of France is",
    "Hello! How are you",
    "Once upon a time there was a little robot. It lived in a quiet house at the edge of a forest, and",
    "Numbers: 0 1 2 3",
    "Tell me three facts about the moon. The moon has no air, it has many craters",
]


@pytest.fixture(scope="module")
def tokenizer():
    """The tiny test tokenizer, for tests of the engine's text handling without a model."""
    return tiny_tokenizer()


@functools.lru_cache(maxsize=8)
def _hf_model(path: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@functools.lru_cache(maxsize=8)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def hf_greedy(path, prompt: str, max_new_tokens: int) -> list[int]:
    """transformers' greedy continuation of ``prompt`` (EOS ignored)."""
    model, tok = _hf_model(str(path)), _tokenizer(str(path))
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def hf_logprobs(path, prompt: str, continuation: list[int]) -> torch.Tensor:
    """log_softmax of transformers' logits at each position that predicts ``continuation``."""
    model, tok = _hf_model(str(path)), _tokenizer(str(path))
    ids = tok(prompt, return_tensors="pt").input_ids
    full = torch.cat([ids, torch.tensor([continuation])], dim=1)
    with torch.no_grad():
        logits = model(full).logits[0].float()
    return logits.log_softmax(-1)[ids.shape[1] - 1: -1]


def greedy_tokens(outputs) -> list[list[int]]:
    """Each request's first completion's token ids."""
    return [o.outputs[0].token_ids for o in outputs]


def assert_logprobs_match_transformers(llm, checkpoint, prompts: list[str]) -> None:
    """Eight greedy tokens of each prompt: the sampled token first, its logprob and the top
    3 within 1e-3 of transformers' on the same continuation, the cumulative logprob their sum."""
    from fw import SamplingParams

    params = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True, logprobs=3)
    for prompt, output in zip(prompts, llm.generate(prompts, params, use_tqdm=False)):
        completion = output.outputs[0]
        reference = hf_logprobs(checkpoint, prompt, completion.token_ids)
        for position, (token, entries) in enumerate(zip(completion.token_ids, completion.logprobs)):
            assert list(entries)[0] == token
            assert entries[token].logprob == pytest.approx(float(reference[position, token]), abs=1e-3)
            top = torch.topk(reference[position], 3)
            for lp, tok in zip(top.values.tolist(), top.indices.tolist()):
                assert entries[tok].logprob == pytest.approx(lp, abs=1e-3)
        assert completion.cumulative_logprob == pytest.approx(
            sum(e[t].logprob for t, e in zip(completion.token_ids, completion.logprobs)), abs=1e-4)

