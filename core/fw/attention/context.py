"""The per-forward context attention layers read: the step's batch layout.

Model code stays free of batch plumbing: the runner enters ``forward_context`` around the
model call, and each ``fw.layers.attention.Attention`` reads the metadata here (its KV
cache is bound to the layer itself at start-up).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from fw.attention.metadata import AttentionMetadata


@dataclass
class ForwardContext:
    metadata: AttentionMetadata


_current: ForwardContext | None = None


@contextmanager
def forward_context(metadata: AttentionMetadata) -> Iterator[ForwardContext]:
    global _current
    previous, _current = _current, ForwardContext(metadata)
    try:
        yield _current
    finally:
        _current = previous


def get_forward_context() -> ForwardContext:
    if _current is None:
        raise RuntimeError("attention was called outside fw.attention.context.forward_context()")
    return _current
