"""The per-forward context attention layers read (metadata and their KV caches).

Model code stays free of cache plumbing: the runner enters ``forward_context`` around
the model call, and each ``fw.layers.attention.Attention`` looks up its own layer's
cache here.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from fw.attention.metadata import AttentionMetadata


@dataclass
class ForwardContext:
    metadata: AttentionMetadata
    kv_caches: list[torch.Tensor]


_current: ForwardContext | None = None


@contextmanager
def forward_context(metadata: AttentionMetadata, kv_caches: list[torch.Tensor]) -> Iterator[ForwardContext]:
    global _current
    previous, _current = _current, ForwardContext(metadata, kv_caches)
    try:
        yield _current
    finally:
        _current = previous


def get_forward_context() -> ForwardContext:
    if _current is None:
        raise RuntimeError("attention was called outside fw.attention.context.forward_context()")
    return _current
