"""The pt loader (pytorch_model*.bin) and the dummy loader (config only, random weights)."""

from __future__ import annotations

import json
import shutil
from collections import OrderedDict

import pytest
import torch

from fw.errors import ModelLoadError
from tests.plugins.loaders.helpers import assert_same_tensors, loader_for, read_all, transformers_tensors


@pytest.fixture
def pt_folder(tiny_llama, tmp_path):
    """The tiny llama with its weights as pytorch_model.bin instead of safetensors."""
    folder = tmp_path / "pt"
    shutil.copytree(tiny_llama, folder)
    (folder / "model.safetensors").unlink()
    torch.save(transformers_tensors(tiny_llama), folder / "pytorch_model.bin")
    return folder


def test_pt_yields_what_transformers_loads(pt_folder, tiny_llama):
    assert type(loader_for(pt_folder)).__name__ == "PtLoader"
    assert_same_tensors(read_all(pt_folder), transformers_tensors(tiny_llama))


def test_pt_sharded_with_index(pt_folder, tiny_llama):
    state = torch.load(pt_folder / "pytorch_model.bin", weights_only=True)
    (pt_folder / "pytorch_model.bin").unlink()
    names = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": names[::2], "pytorch_model-00002-of-00002.bin": names[1::2]}
    for file, keys in halves.items():
        torch.save(OrderedDict((k, state[k]) for k in keys), pt_folder / file)
    weight_map = {k: file for file, keys in halves.items() for k in keys}
    (pt_folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert_same_tensors(read_all(pt_folder, "pt"), transformers_tensors(tiny_llama))


def test_pt_reads_the_legacy_non_zip_format(tmp_path):
    torch.save({"w": torch.arange(4.0)}, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    assert torch.equal(read_all(tmp_path)["w"], torch.arange(4.0))


def test_pt_refuses_pickled_code_and_garbage(tmp_path):
    torch.save({"weight": torch.ones(2), "evil": ModelLoadError("x", "y")}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="cannot be read as a PyTorch checkpoint") as error:
        read_all(tmp_path)
    assert error.value.path == tmp_path / "pytorch_model.bin"
    (tmp_path / "pytorch_model.bin").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ModelLoadError, match="pytorch_model.bin: cannot be read"):
        read_all(tmp_path)


def test_safetensors_wins_over_pt(pt_folder, tiny_llama):
    shutil.copy(tiny_llama / "model.safetensors", pt_folder)
    assert type(loader_for(pt_folder)).__name__ == "SafetensorsLoader"


def test_dummy_reads_the_config_but_no_weights(tiny_llama):
    loader = loader_for(tiny_llama, "dummy")
    assert loader.random_init and loader.auto_priority is None
    assert loader.hf_config().architectures == ["LlamaForCausalLM"]
    assert len(loader.tokenizer()) == loader.hf_config().vocab_size
    assert list(loader.iter_weights()) == []
