"""Shared by the loader tests: read everything a loader yields, and transformers' view."""

from __future__ import annotations

from pathlib import Path

import torch

from fw.config import LoadConfig, ModelConfig
from fw.model_loader.select import get_loader


def loader_for(path: Path, load_format: str = "auto", *, tqdm: bool = False, **model_options):
    model_options.setdefault("model", str(path))
    return get_loader(path, LoadConfig(load_format=load_format, use_tqdm_on_load=tqdm),
                      ModelConfig(**model_options))


def read_all(path: Path, load_format: str = "auto") -> dict[str, torch.Tensor]:
    """Every (name, tensor) the loader yields, quantized matrices dequantized to the file's
    values; fails on a name yielded twice."""
    from fw.layers.packed import QuantizedMatrix

    weights: dict[str, torch.Tensor] = {}
    for name, tensor in loader_for(path, load_format).iter_weights():
        assert name not in weights, f"{name} yielded twice"
        weights[name] = tensor.dequantize() if isinstance(tensor, QuantizedMatrix) else tensor
    return weights


def transformers_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """The parameters transformers loads from ``folder`` with the class its config names
    (a causal model's tied lm_head is not stored)."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    model_class = getattr(transformers, config.architectures[0])
    model = model_class.from_pretrained(folder, dtype="auto")
    state = model.state_dict()
    if "lm_head.weight" in state and model.config.tie_word_embeddings:
        state.pop("lm_head.weight")
    return state


def assert_same_tensors(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, tensor in expected.items():
        assert actual[name].shape == tensor.shape, name
        assert actual[name].dtype == tensor.dtype, name
        assert torch.equal(actual[name], tensor), name
