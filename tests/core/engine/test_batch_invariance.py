"""One answer per prompt however it is served: greedy tokens and their logprobs are the same
bits whether the prompt runs alone on a fresh engine (cold), again over its own cached
prefix, inside a batch of 16 different prompts, or split into prefill chunks of 16 tokens
amid other requests' chunks and decodes.

A row's numbers must not depend on how many rows share its step (the GEMMs sum each output
in one order; one quantization of each weight serves every row count), on where its prompt
was cut into chunks or whether its prefix came from the cache (attention sums a row's
keys in one order over its positions). A user sees a failure here as "temperature 0 gives
another answer when the server is busy".
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fw import LLM, SamplingParams
from tests.checkpoints import CORPUS

#: 16 prompts of 40 to 100 tokens with the tiny tokenizer (chunked at 16 into 3 to 7 pieces,
#: two to six full blocks of 16 for the prefix cache)
_WORDS = CORPUS.split()
PROMPTS = [" ".join(_WORDS[7 * i: 7 * i + 20 + 2 * i]) for i in range(16)]
MAX_TOKENS = 24
GREEDY = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, ignore_eos=True, logprobs=0)

#: (checkpoint dtype, engine options, stored as a Q4_1 GGUF file): float32 and bfloat16
#: weights, the int4 method over bfloat16 and float32 ones (one copy of each weight, int4
#: blocks, for every step), and a Q4_1 file under its default method (gguf) and under
#: gguf_lean (head_dim 64: the attention kernels' vector path)
CASES = {
    "fp32": (torch.float32, {"dtype": "float32"}, False),
    "bf16": (torch.bfloat16, {"dtype": "bfloat16"}, False),
    "int4": (torch.bfloat16, {"dtype": "bfloat16", "quantization": "int4"}, False),
    "int4-fp32": (torch.float32, {"dtype": "float32", "quantization": "int4"}, False),
    "gguf-q4_1": (torch.float32, {"dtype": "bfloat16"}, True),
    "gguf-q4_1-lean": (torch.float32, {"dtype": "bfloat16", "quantization": "gguf_lean"}, True),
}


def _answers(outputs) -> list[list[tuple[int, float]]]:
    """Each output's (token, logprob of that token) pairs."""
    return [[(token, step[token].logprob) for token, step in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)]
            for o in outputs]


def _first_difference(expected, actual) -> str:
    for i, (want, got) in enumerate(zip(expected, actual)):
        if want != got:
            return f"token {i}: {want} != {got}"
    return "lengths differ" if len(expected) != len(actual) else "none"


@pytest.fixture(scope="module", params=list(CASES))
def served(request, tiny_checkpoint_factory, tmp_path_factory):
    """The 16 prompts' greedy answers served four ways on engines of one case."""
    dtype, options, as_gguf = CASES[request.param]
    path = str(tiny_checkpoint_factory("LlamaForCausalLM", dtype=dtype, hidden_size=128, num_attention_heads=4,
                                       num_key_value_heads=2, head_dim=64, intermediate_size=256))
    if as_gguf:
        from tests.tiny_gguf import make_tiny_gguf

        path = str(make_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-q4_1.gguf", Path(path), tensor_type="Q4_1"))
    common = dict(max_model_len=256, kv_cache_memory_bytes=16 << 20, **options)

    cached_llm = LLM(path, enable_prefix_caching=True, **common)
    cold = [cached_llm.generate([p], GREEDY, use_tqdm=False)[0] for p in PROMPTS]
    cached = [cached_llm.generate([p], GREEDY, use_tqdm=False)[0] for p in PROMPTS]
    assert all(o.num_cached_tokens == 0 for o in cold)
    assert all(o.num_cached_tokens >= 16 for o in cached), "the second run must start from the cached prefix"
    del cached_llm

    batched = LLM(path, enable_prefix_caching=False, **common).generate(PROMPTS, GREEDY, use_tqdm=False)
    chunked_llm = LLM(path, enable_prefix_caching=False, max_num_batched_tokens=16, max_num_seqs=16, **common)
    chunked = chunked_llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    lengths = [len(o.prompt_token_ids) for o in chunked]
    assert min(lengths) > 32, f"every prompt must take several chunks of 16: {lengths}"
    return {"cold": _answers(cold), "cached": _answers(cached), "batched": _answers(batched),
            "chunked": _answers(chunked)}


@pytest.mark.parametrize("way", ["cached", "batched", "chunked"])
def test_greedy_answer_is_the_cold_one(served, way):
    different = {i: _first_difference(cold, other)
                 for i, (cold, other) in enumerate(zip(served["cold"], served[way])) if cold != other}
    assert not different, f"{way}: {len(different)} of {len(PROMPTS)} prompts differ from cold: {different}"
