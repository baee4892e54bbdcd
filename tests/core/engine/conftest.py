"""Engine-test helpers: transformers as the oracle for greedy tokens and logprobs."""

from __future__ import annotations

import functools

import pytest
import torch

#: prompts of ragged lengths (3 to ~40 tokens with the tiny tokenizer)
PROMPTS = [
    "The capital of France is",
    "Hello! How are you",
    "Once upon a time there was a little robot. It lived in a quiet house at the edge of a forest, and",
    "Numbers: 0 1 2 3",
    "Tell me three facts about the moon. The moon has no air, it has many craters",
]


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
