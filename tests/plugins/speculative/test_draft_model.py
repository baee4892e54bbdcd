"""A draft model must number tokens as the target does: one with another vocabulary is
refused at start-up with its name, not left to guess nonsense."""

from __future__ import annotations

import json
import shutil

import pytest
from fw import LLM
from fw.errors import ConfigurationError


def test_a_draft_with_another_tokenizer_is_refused(tiny_llama, tmp_path):
    other = tmp_path / "other-draft"
    shutil.copytree(tiny_llama, other)
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = sorted(vocab, key=vocab.get)[100:102]
    vocab[first], vocab[second] = vocab[second], vocab[first]  # two tokens swap their ids
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ConfigurationError, match="other-draft: its tokenizer differs"):
        LLM(str(tiny_llama), dtype="float32", speculative_config={"model": str(other)})
