"""What each pooling task does with the pooled hidden states (vLLM's pooler heads).

* embed: keep the first ``dimensions`` (Matryoshka), then L2-normalise if asked, in that
  order, as vLLM does (a shortened embedding is a unit vector again);
* classify: the model's classifier, then softmax over the labels (sigmoid for a single
  label: a cross-encoder's relevance score) unless ``activation`` is False;
* encode: each token's hidden state, normalised if asked.

Each request's row is processed on its own values only, so its output never depends on
the requests pooled beside it. Parameters are already resolved by admission (no None).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fw.pooling.params import PoolingParams


def embed(pooled: list[torch.Tensor], params: list[PoolingParams]) -> list[torch.Tensor]:
    out = []
    for vector, p in zip(pooled, params):
        if p.dimensions is not None:
            vector = vector[..., : p.dimensions]
        out.append(F.normalize(vector, dim=-1) if p.normalize else vector)
    return out


def encode(pooled: list[torch.Tensor], params: list[PoolingParams]) -> list[torch.Tensor]:
    return [F.normalize(states, dim=-1) if p.normalize else states for states, p in zip(pooled, params)]


def classify(model: Any, pooled: list[torch.Tensor], params: list[PoolingParams]) -> list[torch.Tensor]:
    logits = model.classify(torch.stack(pooled)).float()
    out = []
    for row, p in zip(logits, params):
        if p.activation:
            row = torch.sigmoid(row) if row.shape[-1] == 1 else torch.softmax(row, dim=-1)
        out.append(row)
    return out


def apply(task: str, model: Any, pooled: list[torch.Tensor], params: list[PoolingParams]) -> list[torch.Tensor]:
    if task == "classify":
        return classify(model, pooled, params)
    if task == "encode":
        return encode(pooled, params)
    return embed(pooled, params)
