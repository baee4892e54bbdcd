"""The built-in poolers, and poolers as a plugin kind (fw_register_poolers)."""

from __future__ import annotations

import types

import pytest
import torch

from fw import hookimpl, plugins
from fw.pooling.pooler import Pooler
from fw.registry import UnknownNameError
from tests.checkpoints import encoder_tokenizer

LENGTHS = [3, 1, 5]


def builtin(name: str) -> Pooler:
    return plugins.load("pooler", name)()


@pytest.mark.parametrize("name, expected", [
    ("MEAN", lambda rows: rows.mean(0)), ("CLS", lambda rows: rows[0]), ("LAST", lambda rows: rows[-1]),
    ("ALL", lambda rows: rows),
])
def test_each_builtin_pools_each_prompt_on_its_own(name, expected):
    hidden = torch.randn(sum(LENGTHS), 8, dtype=torch.bfloat16)
    pooler = builtin(name)
    rows = hidden.float().split(LENGTHS)
    if not pooler.needs_all_tokens:  # the runner hands it the last row of each prompt only
        hidden, lengths = torch.stack([r[-1] for r in hidden.split(LENGTHS)]), [1] * len(LENGTHS)
    else:
        lengths = LENGTHS
    pooled = pooler.pool(hidden, lengths)
    for got, prompt_rows in zip(pooled, rows):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected(prompt_rows))
    alone = pooler.pool(hidden[: lengths[0]], lengths[:1])[0]
    assert torch.equal(alone, pooled[0])  # bit for bit: the batch does not matter


class MaxPooler(Pooler):
    name = "MAX"

    def pool(self, hidden, lengths):
        return [rows.float().amax(0) for rows in hidden.split(lengths)]


@pytest.fixture
def max_pooler_plugin():
    plugin = types.SimpleNamespace(fw_register_poolers=hookimpl(lambda register: register("MAX", MaxPooler)))
    unregister = plugins.register_plugin(plugin, "test-max-pooler")
    yield
    unregister()


def test_fw_register_poolers_adds_a_pooler_that_pooling_type_selects(max_pooler_plugin, tiny_checkpoint_factory):
    """A plugin's fw_register_poolers pooler serves --pooler-config pooling_type."""
    import transformers

    from fw import LLM

    path = tiny_checkpoint_factory("BertModel")
    assert "MAX" in plugins.registry("pooler").names()
    llm = LLM(str(path), dtype="float32", pooler_config={"pooling_type": "max", "normalize": False})
    text = "The quick brown fox jumps over the lazy dog."
    got = torch.from_numpy(llm.embed([text], use_tqdm=False)[0].outputs.data)
    model = transformers.BertModel.from_pretrained(path).eval()
    with torch.no_grad():
        want = model(**encoder_tokenizer()(text, return_tensors="pt")).last_hidden_state[0].amax(0)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_an_unknown_pooler_fails_at_start_up_listing_the_known(tiny_checkpoint_factory):
    from fw import LLM

    with pytest.raises(UnknownNameError, match="unknown pooler 'NOPE'; available: ALL, CLS, LAST, MEAN"):
        LLM(str(tiny_checkpoint_factory("BertModel")), dtype="float32", pooler_config={"pooling_type": "nope"})
