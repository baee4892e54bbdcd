"""--safetensors-load-strategy eager and --pt-load-map-location: the same weights, read
another way."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from fw import LLM, SamplingParams

GREEDY = SamplingParams(max_tokens=6, temperature=0, ignore_eos=True)


def tokens(path, **options):
    llm = LLM(str(path), dtype="float32", kv_cache_memory_bytes=2**22, **options)
    return llm.generate(["hello world"], GREEDY, use_tqdm=False)[0].outputs[0].token_ids


def test_eager_safetensors_reads_whole_files_and_gives_the_same_model(tiny_llama, monkeypatch):
    lazy = tokens(tiny_llama)
    import safetensors

    def no_mmap(*args, **kwargs):
        raise AssertionError("eager loading must not memory-map")

    monkeypatch.setattr(safetensors, "safe_open", no_mmap)
    assert tokens(tiny_llama, safetensors_load_strategy="eager") == lazy


@pytest.fixture
def pt_checkpoint(tiny_llama, tmp_path):
    folder = tmp_path / "pt"
    shutil.copytree(tiny_llama, folder)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    return folder


def test_pt_load_map_location_reaches_torch_load(pt_checkpoint, tiny_llama, monkeypatch):
    seen = []
    original = torch.load

    def recording(*args, **kwargs):
        seen.append(kwargs.get("map_location"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording)
    assert tokens(pt_checkpoint, pt_load_map_location='{"cpu": "cpu"}') == tokens(tiny_llama)
    assert seen == [{"cpu": "cpu"}]
