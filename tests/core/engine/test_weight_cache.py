"""The prepared-weights cache: a second start maps the weights the first prepared and gives
the same tokens and logprobs bit for bit; a changed checkpoint, another dtype or
--no-weights-cache prepare again; what cannot be stored is not cached; old entries go."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from torch import nn

from fw.engine import prepared_state, weight_cache

PROMPT = "Once upon a time there was a little robot"


@pytest.fixture
def cached(monkeypatch, fw_cache_dir):
    """Cache even tiny checkpoints (the default floor is 32 MiB), in this test's folder."""
    monkeypatch.setattr(weight_cache, "MIN_BYTES", 0)
    root = fw_cache_dir / "weights"
    shutil.rmtree(root, ignore_errors=True)
    return root


def entries(root) -> list:
    return sorted(p for p in root.iterdir() if (p / "index.json").is_file()) if root.is_dir() else []


def run(path, caplog, **options):
    from fw import LLM, SamplingParams

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fw.engine"):
        llm = LLM(str(path), **options)
    hit = any("prepared weights from the cache" in r.getMessage() for r in caplog.records)
    out = llm.generate(PROMPT, SamplingParams(max_tokens=6, temperature=0, ignore_eos=True, logprobs=2),
                       use_tqdm=False)[0].outputs[0]
    return hit, list(out.token_ids), [{t: lp.logprob for t, lp in step.items()} for step in out.logprobs]


def test_a_second_start_maps_what_the_first_prepared(tiny_llama, cached, caplog):
    options = {"dtype": "bfloat16", "quantization": "int4"}  # packed int4 blocks and 8-bit panels
    first = run(tiny_llama, caplog, **options)
    assert not first[0] and len(entries(cached)) == 1
    second = run(tiny_llama, caplog, **options)
    assert second[0] and second[1:] == first[1:]  # the same tokens and logprobs, bit for bit
    assert run(tiny_llama, caplog, dtype="float32")[0] is False  # another dtype: another entry
    assert len(entries(cached)) == 2


def test_a_changed_checkpoint_is_prepared_again(tiny_checkpoint_factory, tmp_path, cached, caplog):
    folder = tmp_path / "model"
    shutil.copytree(tiny_checkpoint_factory("LlamaForCausalLM"), folder)
    assert not run(folder, caplog, dtype="float32")[0]
    assert run(folder, caplog, dtype="float32")[0]
    shutil.copy(tiny_checkpoint_factory("LlamaForCausalLM", seed=1) / "model.safetensors", folder / "model.safetensors")
    hit, tokens, _ = run(folder, caplog, dtype="float32")
    assert not hit
    assert tokens == run(tiny_checkpoint_factory("LlamaForCausalLM", seed=1), caplog, dtype="float32")[1]


def test_turned_off_nothing_is_written(tiny_llama, cached, caplog):
    assert not run(tiny_llama, caplog, dtype="float32", weights_cache=False)[0]
    assert entries(cached) == []


def test_small_checkpoints_are_not_cached(tiny_llama, fw_cache_dir, caplog):
    shutil.rmtree(fw_cache_dir / "weights", ignore_errors=True)
    run(tiny_llama, caplog, dtype="float32")
    assert entries(fw_cache_dir / "weights") == []


def test_only_the_newest_entries_are_kept(tiny_llama, cached, caplog, monkeypatch):
    monkeypatch.setattr(weight_cache, "KEEP", 2)
    for length in (128, 256, 384):
        run(tiny_llama, caplog, dtype="float32", max_model_len=length)
    assert len(entries(cached)) == 2


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(4, 8), requires_grad=False)
        self.register_buffer("table", torch.arange(3.0))
        self.packed = None
        self.flag = False

    def post_load(self):
        self.packed = (self.weight.data.to(torch.bfloat16).clone(), None, self.weight.data[1:])
        self.flag = True
        self.weight.data = self.weight.data.new_empty(0)


def test_prepared_state_round_trip(tmp_path):
    model = nn.Sequential(Layer(), Layer())
    before = prepared_state.watch(model)
    for i, layer in enumerate(model):
        layer.weight.data.copy_(torch.randn(4, 8) + i)
        layer.post_load()
    state = prepared_state.capture(model, before)
    prepared_state.write(state, tmp_path)
    fresh = nn.Sequential(Layer(), Layer())
    assert prepared_state.read(fresh, tmp_path)
    for old, new in zip(model, fresh):
        assert new.flag is True and new.packed[1] is None and new.weight.numel() == 0
        assert torch.equal(old.packed[0], new.packed[0]) and torch.equal(old.packed[2], new.packed[2])
        assert torch.equal(old.table, new.table)
    assert not prepared_state.read(nn.Sequential(Layer()), tmp_path)  # another shape of model


def test_objects_are_not_captured():
    model = Layer()
    before = prepared_state.watch(model)
    model.packed = object()
    assert prepared_state.capture(model, before) is None
