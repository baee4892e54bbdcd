"""The safetensors loader: the tensors transformers loads, sharded or not, and clear errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from fw.errors import ModelLoadError
from tests.checkpoints import ARCHITECTURES
from tests.plugins.loaders.helpers import assert_same_tensors, loader_for, read_all, transformers_tensors


#: transformers 5 fuses these models' experts into 3-D tensors when it loads them, so its
#: state dict names them otherwise; for them the file itself is the reference
FUSED_EXPERTS = {"MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"}


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_yields_what_transformers_loads(tiny_checkpoint_factory, architecture):
    from safetensors.torch import load_file

    folder = tiny_checkpoint_factory(architecture)
    assert type(loader_for(folder)).__name__ == "SafetensorsLoader"
    expected = (load_file(folder / "model.safetensors") if architecture in FUSED_EXPERTS
                else transformers_tensors(folder))
    assert_same_tensors(read_all(folder), expected)


def test_tied_bf16_checkpoint(tiny_checkpoint_factory):
    folder = tiny_checkpoint_factory(tie_word_embeddings=True, dtype=torch.bfloat16)
    weights = read_all(folder)
    assert "lm_head.weight" not in weights
    assert_same_tensors(weights, transformers_tensors(folder))


def test_sharded_checkpoint_reads_every_shard(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tiny_llama).save_pretrained(tmp_path, max_shard_size="60KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    assert_same_tensors(read_all(tmp_path, "safetensors"), read_all(tiny_llama))

    shard = sorted(tmp_path.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(ModelLoadError, match=f"missing: .*{shard.name}") as error:
        read_all(tmp_path)
    assert error.value.path.name == "model.safetensors.index.json"


def test_truncated_file_names_the_file(tiny_llama, tmp_path):
    shutil.copytree(tiny_llama, tmp_path / "m")
    file = tmp_path / "m" / "model.safetensors"
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="is truncated: its tensors need") as error:
        read_all(tmp_path / "m")
    assert error.value.path == file
    assert str(file) in str(error.value)


@pytest.mark.parametrize("content, problem", [
    (b"\x01\x02", "only 2 bytes"),
    (b"\xff" * 64, "header claims"),
    ((19).to_bytes(8, "little") + b"{not json at all!!!", "malformed safetensors header"),
])
def test_malformed_file(tmp_path, content, problem):
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelLoadError, match=problem):
        read_all(tmp_path)


def test_progress_bar_only_when_asked(tiny_llama, capsys):
    list(loader_for(tiny_llama, tqdm=True).iter_weights())
    assert "Loading safetensors weights" in capsys.readouterr().err
    list(loader_for(tiny_llama, tqdm=False).iter_weights())
    assert capsys.readouterr().err == ""
