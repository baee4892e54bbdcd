"""A tiny random GPT-2 checkpoint, made in the test: nothing may download weights.

The tokenizer is a byte-level BPE trained in-process on a short text (as GPT-2's own
is byte-level BPE), so prompts become a few tokens per word and any text stays
encodable. The model is transformers' GPT2LMHeadModel with random weights, saved the
way a hub checkpoint is, which makes transformers the reference fw is checked against.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

CORPUS = """\
The quick brown fox jumps over the lazy dog. Once upon a time there was a small robot
that lived at the edge of a forest. Every morning it watched the sun rise and wondered
what colours were made of. Paris is the capital of France; Rome is the capital of Italy.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100. Hello! How are you today? I am fine, thank you.
"""

def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>", clean_up_tokenization_spaces=False)


def _make_tiny_gpt2(directory: Path, **overrides) -> Path:
    """Save a random 2-layer GPT-2 (hidden 64, 4 heads) and its tokenizer in ``directory``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_tokenizer()
    # initializer_range 0.2, not GPT-2's 0.02: near-uniform logits would make greedy
    # decoding repeat one token, and a test comparing such outputs proves little
    values = dict(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=128,
                  initializer_range=0.2, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = GPT2Config(**{**values, **overrides})
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # norms start at 1 and biases at 0: a forgotten load would not show
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def make_tiny_gpt2(tmp_path_factory):
    """``make_tiny_gpt2(**config_overrides)`` -> a new checkpoint folder."""
    return lambda **overrides: _make_tiny_gpt2(tmp_path_factory.mktemp("gpt2"), **overrides)


@pytest.fixture(scope="session")
def tiny_gpt2(make_tiny_gpt2) -> Path:
    return make_tiny_gpt2()


@pytest.fixture(scope="session")
def hf_greedy():
    """``hf_greedy(path, prompt, max_new_tokens)`` -> transformers' greedy token ids."""
    return _hf_greedy


def _hf_greedy(path: Path, prompt: str, max_new_tokens: int) -> list[int]:
    """transformers' greedy continuation of ``prompt``, EOS ignored."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = AutoTokenizer.from_pretrained(path)(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()
