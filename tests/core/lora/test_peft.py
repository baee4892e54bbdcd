"""Reading PEFT adapter folders: scaling, file formats, and refusals that name the reason."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fw.lora.peft import read_peft_adapter
from fw.errors import LoRAAdapterError
from tests.core.lora.toy import layer0_shapes, write_adapter

Q = "model.layers.0.self_attn.q_proj"


def test_reads_pairs_and_scales_by_alpha_over_rank(tmp_path):
    folder = write_adapter(tmp_path / "a", layer0_shapes("q_proj", "down_proj"), r=4, lora_alpha=16)
    adapter = read_peft_adapter("a", folder)
    assert set(adapter.modules) == {Q, "model.layers.0.mlp.down_proj"}
    assert adapter.rank == 4 and adapter.target_modules == ["down_proj", "q_proj"]
    assert adapter.modules[Q].scale == 4.0
    assert adapter.modules[Q].lora_a.shape == (4, 8) and adapter.modules[Q].lora_b.shape == (8, 4)


def test_rslora_and_alpha_pattern(tmp_path):
    folder = write_adapter(tmp_path / "a", layer0_shapes("q_proj", "o_proj"), r=4, lora_alpha=8,
                           use_rslora=True, alpha_pattern={"o_proj": 2})
    adapter = read_peft_adapter("a", folder)
    assert adapter.modules[Q].scale == pytest.approx(8 / math.sqrt(4))
    assert adapter.modules["model.layers.0.self_attn.o_proj"].scale == pytest.approx(2 / math.sqrt(4))


def test_pytorch_bin_weights_are_read(tmp_path):
    folder = write_adapter(tmp_path / "a", layer0_shapes("q_proj"), weights_file="adapter_model.bin")
    assert set(read_peft_adapter("a", folder).modules) == {Q}


def refusal(name, folder) -> str:
    with pytest.raises(LoRAAdapterError) as info:
        read_peft_adapter(name, folder)
    message = str(info.value)
    assert message.startswith(f"LoRA adapter {name!r} (")
    assert info.value.param == "lora_path"
    return message


def test_missing_things_are_named(tmp_path):
    assert "the folder does not exist" in refusal("gone", tmp_path / "nowhere")
    assert "no lora_path given" in refusal("empty", "")
    (tmp_path / "file").write_text("x")
    assert "not a folder" in refusal("file", tmp_path / "file")
    folder = write_adapter(tmp_path / "a", layer0_shapes("q_proj"))
    (folder / "adapter_model.safetensors").unlink()
    assert "no weights file (adapter_model.safetensors or adapter_model.bin)" in refusal("a", folder)
    (folder / "adapter_config.json").unlink()
    assert "adapter_config.json is missing" in refusal("a", folder)


@pytest.mark.parametrize("changes, reason", [
    ({"peft_type": "IA3"}, "peft_type is not LORA"),
    ({"use_dora": True}, "DoRA"),
    ({"bias": "lora_only"}, "trains biases"),
    ({"modules_to_save": ["lm_head"]}, "replaces whole modules"),
    ({"fan_in_fan_out": True}, "fan_in_fan_out"),
])
def test_unsupported_variants_are_refused(tmp_path, changes, reason):
    folder = write_adapter(tmp_path / "a", layer0_shapes("q_proj"), **changes)
    assert reason in refusal("a", folder)


def test_malformed_weights_are_refused(tmp_path):
    from safetensors.torch import save_file

    folder = write_adapter(tmp_path / "a", layer0_shapes("q_proj"))
    file = folder / "adapter_model.safetensors"
    save_file({"base_model.model.model.embed_tokens.lora_embedding_A": torch.zeros(4, 8)}, str(file))
    assert "holds no LoRA tensors" in refusal("a", folder)
    save_file({f"base_model.model.{Q}.lora_A.weight": torch.zeros(4, 8)}, str(file))
    assert "has lora_A but not both" in refusal("a", folder)
    save_file({f"base_model.model.{Q}.lora_A.weight": torch.zeros(4, 8),
               f"base_model.model.{Q}.lora_B.weight": torch.zeros(8, 3)}, str(file))
    assert "do not form a LoRA pair" in refusal("a", folder)
    file.write_bytes(b"not safetensors")
    assert "cannot read adapter_model.safetensors" in refusal("a", folder)
    (folder / "adapter_config.json").write_text(json.dumps([1]))
    assert "is not a JSON object" in refusal("a", folder)


def test_errors_do_not_quote_the_files(tmp_path):
    """A loader that quotes what it read, or where its parser stopped, reads files for
    whoever calls it."""
    folder = write_adapter(tmp_path / "a", layer0_shapes("q_proj"))
    config = folder / "adapter_config.json"
    config.write_text('{"r": 8, "secret": "hunter2", oops}')
    message = refusal("a", folder)
    assert message.endswith("adapter_config.json is not valid JSON")
    assert "hunter2" not in message and "line" not in message and "column" not in message
    config.write_text(json.dumps({"peft_type": "hunter2"}))
    assert "hunter2" not in refusal("a", folder)
    config.write_text(json.dumps({"bias": "hunter2", "peft_type": "LORA"}))
    assert "hunter2" not in refusal("a", folder)
    config.write_text(json.dumps({"modules_to_save": ["hunter2"]}))
    assert "hunter2" not in refusal("a", folder)
    config.write_text(json.dumps({"peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(b"\x20\x00\x00\x00\x00\x00\x00\x00" + b'{"hunter2": 1}' + b" " * 18)
    message = refusal("a", folder)
    assert "cannot read adapter_model.safetensors" in message and "hunter2" not in message


def test_tilde_is_not_expanded(tmp_path, monkeypatch):
    home = tmp_path / "home"
    write_adapter(home / "a", layer0_shapes("q_proj"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert "the folder does not exist" in refusal("a", "~/a")
