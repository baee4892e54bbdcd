"""A real (byte-level BPE) Hugging Face tokenizer built in a second, for token chunking.

Trained on the texts it will cut, with the given markers as special tokens, so it
behaves like a model's tokenizer: markers are one token, multi-byte characters are
split across tokens.
"""

from __future__ import annotations

from typing import Iterable


def tiny_tokenizer(texts: Iterable[str], special_tokens: Iterable[str] = ()):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=list(special_tokens), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer)
