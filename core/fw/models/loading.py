"""Filling a model from checkpoint tensors named as in Hugging Face checkpoints.

A model plugin built from ``fw.layers`` names its modules after the checkpoint's, merges
projections that read the same input (q/k/v, gate/up) and says which checkpoint names go
into which merged module and shard; ``load_checkpoint`` does the rest. Weights of linear
layers, embeddings and LM heads go through the layer (``load_weight``), so a quantization
method decides how they are stored: a quantized file's matrices
(``fw.layers.packed.QuantizedMatrix``) are kept as levels or dequantized to the file's
values there. Anything else is copied after its shape is checked.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from fw.layers.embedding import LMHead, VocabEmbedding
from fw.layers.linear import Linear
from fw.layers.packed import QuantizedMatrix

#: the usual merges: checkpoint projection -> (merged module, shard index)
STACKED = {
    "q_proj": ("qkv_proj", 0), "k_proj": ("qkv_proj", 1), "v_proj": ("qkv_proj", 2),
    "gate_proj": ("gate_up_proj", 0), "up_proj": ("gate_up_proj", 1),
}


def copy_checked(param: nn.Parameter, tensor: "torch.Tensor | QuantizedMatrix", name: str) -> None:
    if isinstance(tensor, QuantizedMatrix):
        tensor = tensor.dequantize()
    if param.shape != tensor.shape:
        raise ValueError(f"{name}: checkpoint shape {tuple(tensor.shape)} != model shape {tuple(param.shape)}")
    param.data.copy_(tensor)


def load_checkpoint(model: nn.Module, weights: Iterable[tuple[str, "torch.Tensor | QuantizedMatrix"]], *,
                    stacked: Mapping[str, tuple[str, int]] = STACKED, renames: Sequence[tuple[str, str]] = (),
                    skip: Callable[[str], bool] = lambda name: False) -> set[str]:
    """Load ``weights`` into ``model``; returns the names of the parameters filled.

    ``renames`` are (old, new) substrings replaced in each checkpoint name first (Mixtral's
    ``block_sparse_moe`` -> ``mlp``); names for which ``skip`` is true are ignored.
    """
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    loaded: set[str] = set()
    for name, tensor in weights:
        for old, new in renames:
            name = name.replace(old, new)
        if skip(name):
            continue
        module_name, _, kind = name.rpartition(".")
        parent, _, leaf = module_name.rpartition(".")
        shard = None
        if leaf in stacked:
            merged, shard = stacked[leaf]
            module_name = f"{parent}.{merged}" if parent else merged
        key = f"{module_name}.{kind}"
        if key not in params:
            raise KeyError(f"checkpoint tensor {name!r} has no place in {type(model).__name__}")
        module = modules[module_name]
        try:
            if kind == "weight" and isinstance(module, Linear):
                module.load_weight(tensor, shard)
            elif kind == "weight" and isinstance(module, (VocabEmbedding, LMHead)):
                module.load_weight(tensor)
            elif shard is not None:
                module.load_shard(params[key], tensor, shard)
            else:
                copy_checked(params[key], tensor, name)
        except ValueError as exc:
            message = str(exc)
            raise ValueError(message if message.startswith(name) else f"{name}: {message}") from None
        loaded.add(key)
    return loaded
