"""The prefix cache gives the tokens and logprobs transformers gives without it.

A block of KV is only valid after the exact tokens that came before it: the same eight
tokens after another prefix, or at another position, hold other keys and values. These
tests reuse a block's tokens in those places (and under preemption, which recomputes
requests from the cache) and compare every answer with transformers on the same weights,
under each block key (``--prefix-caching-hash-algo``): a key that forgot the parent would
still pass the token-by-token check of a hit, so only the answers show it.
"""

from __future__ import annotations

import functools

import pytest
import torch

from fw import SamplingParams
from tests.core.engine.conftest import _hf_model

BLOCK = 8
MAX_TOKENS = 8
PARAMS = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, ignore_eos=True, logprobs=0)


@pytest.fixture(scope="module", params=["builtin", "sha256"])
def llm(tiny_llama, llm_factory, request):
    return llm_factory(tiny_llama, block_size=BLOCK, prefix_caching_hash_algo=request.param)


@pytest.fixture(scope="module")
def blocks(llm) -> dict[str, list[int]]:
    """Four different blocks of prompt tokens, and short tails to end prompts with."""
    texts = {"x": "The quick brown fox jumps over the lazy dog.", "y": "Water boils at 100 degrees Celsius.",
             "z": "Once upon a time there was a little robot.", "w": "Tell me three facts about the moon.",
             "t1": "Paris", "t2": "Hello", "t3": "Numbers", "t4": "Thanks"}
    tokenizer = llm.get_tokenizer()
    ids = {name: tokenizer.encode(text, add_special_tokens=False) for name, text in texts.items()}
    out = {name: ids[name][:BLOCK] if len(name) == 1 else ids[name][:3] for name in texts}
    assert all(len(out[name]) == BLOCK for name in "xyzw")
    return out


@functools.lru_cache(maxsize=64)
def hf_greedy_logprobs(path: str, prompt: tuple[int, ...], max_tokens: int) -> tuple[list[int], list[float]]:
    """transformers' greedy continuation of the token ids, with each token's logprob."""
    model = _hf_model(path)
    ids = torch.tensor([prompt])
    tokens, logprobs = [], []
    with torch.no_grad():
        for _ in range(max_tokens):
            scores = model(ids).logits[0, -1].float().log_softmax(-1)
            token = int(scores.argmax())
            tokens.append(token)
            logprobs.append(float(scores[token]))
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return tokens, logprobs


def assert_like_transformers(path, outputs, prompts):
    for output, prompt in zip(outputs, prompts):
        tokens, logprobs = hf_greedy_logprobs(str(path), tuple(prompt), MAX_TOKENS)
        completion = output.outputs[0]
        assert completion.token_ids == tokens, f"prompt {prompt} (cached {output.num_cached_tokens} tokens)"
        got = [entry[token].logprob for token, entry in zip(completion.token_ids, completion.logprobs)]
        assert got == pytest.approx(logprobs, abs=1e-3)


def generate(llm, prompts):
    return llm.generate([{"prompt_token_ids": p} for p in prompts], PARAMS, use_tqdm=False)


@pytest.fixture
def fresh_cache(llm):
    assert llm.engine.kv.pool.reset_prefix_cache()
    yield llm


@pytest.mark.parametrize("case", ["same-block-after-another-prefix", "same-block-at-another-position"])
def test_a_block_is_reused_only_after_the_same_prefix(fresh_cache, tiny_llama, blocks, case):
    """Z+Y may reuse Z from Z+W, never Y from X+Y (its parent differs); Y at the start
    of a prompt is not the Y that followed X either."""
    llm, b = fresh_cache, blocks
    warm = [b["x"] + b["y"] + b["t1"], b["z"] + b["w"] + b["t2"]]
    assert_like_transformers(tiny_llama, generate(llm, warm), warm)
    if case == "same-block-after-another-prefix":
        prompt, reusable = b["z"] + b["y"] + b["t3"], BLOCK  # Z is the one block it may reuse
    else:
        prompt, reusable = b["y"] + b["x"] + b["t3"], 0
    (output,) = generate(llm, [prompt])
    assert_like_transformers(tiny_llama, [output], [prompt])
    assert output.num_cached_tokens == reusable


def test_the_same_prompt_hits_every_full_block(fresh_cache, tiny_llama, blocks):
    b = blocks
    prompt = b["x"] + b["y"] + b["z"] + b["t4"]
    first, second = generate(fresh_cache, [prompt]), generate(fresh_cache, [prompt])
    assert_like_transformers(tiny_llama, first + second, [prompt, prompt])
    assert (first[0].num_cached_tokens, second[0].num_cached_tokens) == (0, 3 * BLOCK)


def test_preempted_requests_resume_from_shared_blocks(tiny_llama, llm_factory, blocks):
    """A KV cache too small for the batch preempts requests; they come back through the
    prefix cache (their own and each other's blocks) and still answer as transformers."""
    b = blocks
    shared = b["x"] + b["y"]
    prompts = [shared + b[t] for t in ("t1", "t2", "t3", "t4")] + [b["z"] + b["y"] + b["t1"], b["y"] + b["x"] + b["t2"]]
    # 10 blocks of 8: each request needs 3 to 5, six of them run at once.
    llm = llm_factory(tiny_llama, block_size=BLOCK, num_gpu_blocks_override=10)
    params = SamplingParams(max_tokens=2 * BLOCK, temperature=0.0, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
    for output, prompt in zip(outputs, prompts):
        assert output.outputs[0].token_ids == hf_greedy_logprobs(str(tiny_llama), tuple(prompt), 2 * BLOCK)[0]
    assert llm.engine.scheduler.num_preemptions > 0
    assert llm.engine.kv.prefix_hits > 0
    assert llm.engine.kv.pool.num_free_blocks == 10
