"""Resolving a model path, choosing a loader (--load-format), and loading only a tokenizer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from fw.config import LoadConfig, ModelConfig
from fw.errors import ModelLoadError
from fw.model_loader.default_model import default_model_path
from fw.model_loader.select import get_loader, load_tokenizer, resolve_model_path
from fw.registry import UnknownNameError
from tests.conftest import REPO
from tests.tiny_gguf import make_tiny_gguf


def loader(path, load_format="auto"):
    return get_loader(path, LoadConfig(load_format=load_format), ModelConfig(model=str(path)))


def test_no_model_is_the_embedded_default():
    path = resolve_model_path(None)
    assert path == default_model_path() and path.suffix == ".gguf" and path.is_file()
    assert type(loader(path)).__name__ == "GGUFLoader"


def test_missing_path_is_named(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file or folder$") as error:
        resolve_model_path(str(tmp_path / "nope"))
    assert error.value.path == tmp_path / "nope"


def test_auto_picks_by_what_the_path_holds(tiny_llama, tmp_path):
    assert type(loader(tiny_llama)).__name__ == "SafetensorsLoader"
    assert type(loader(tiny_llama / "model.safetensors")).__name__ == "SafetensorsLoader"
    pt = tmp_path / "pt"
    pt.mkdir()
    torch.save({"w": torch.ones(1)}, pt / "pytorch_model.bin")
    assert type(loader(pt)).__name__ == "PtLoader"
    gguf = make_tiny_gguf(tmp_path / "tiny.gguf", tiny_llama)
    assert type(loader(gguf)).__name__ == "GGUFLoader"
    renamed = tmp_path / "model.bin-but-gguf"
    shutil.copy(gguf, renamed)
    assert type(loader(renamed)).__name__ == "GGUFLoader"  # recognised by its magic number


def test_explicit_format_wins(tiny_llama):
    assert type(loader(tiny_llama, "dummy")).__name__ == "DummyLoader"


def test_unknown_format_lists_the_available_ones(tiny_llama):
    expected = "unknown load format 'tensorflow'; available: dummy, gguf, pt, safetensors"
    with pytest.raises(UnknownNameError, match=expected):
        loader(tiny_llama, "tensorflow")


def test_unrecognised_folder_lists_its_contents_and_the_formats(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "weights.h5").write_bytes(b"\0")
    with pytest.raises(ModelLoadError, match=r"no load format recognises it \(a folder holding config.json, "
                                             r"weights.h5\); available formats: dummy, gguf, pt, safetensors"):
        loader(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="an empty folder"):
        loader(tmp_path / "empty")


def test_load_tokenizer_from_folder_file_and_override(tiny_llama, tmp_path, fw_cache_dir):
    folder = load_tokenizer(str(tiny_llama))
    gguf = load_tokenizer(str(make_tiny_gguf(tmp_path / "tiny.gguf", tiny_llama)))
    overridden = load_tokenizer("served-name-not-a-path", str(tiny_llama))
    text = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    assert folder.encode(text) == gguf.encode(text) == overridden.encode(text)


def test_load_tokenizer_of_a_folder_does_not_import_torch(tiny_llama):
    code = ("import sys; from fw.model_loader.select import load_tokenizer; "
            f"t = load_tokenizer({str(tiny_llama)!r}); assert len(t) == 448; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr


def test_load_tokenizer_uses_autotokenizer_for_model_specific_classes(tiny_llama, tmp_path):
    folder = tmp_path / "gpt2-style"
    shutil.copytree(tiny_llama, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "GPT2Tokenizer"}))
    assert type(load_tokenizer(str(folder))).__name__ == "GPT2Tokenizer"
