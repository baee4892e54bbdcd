"""The contract every attention backend follows.

Backends are plugins (``fw_register_attention_backends``): the built-in ``torch``
backend serves on the CPU and the ``triton`` backend on CUDA. They all read and write the
paged layout described in ``fw.attention.metadata``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from fw.attention.kv_format import KVCacheFormat
from fw.attention.metadata import AttentionMetadata


class AttentionBackend(ABC):
    """One instance per attention layer.

    ``forward`` first stores this step's keys and values at ``metadata.slot_mapping`` in
    ``kv_cache``, then computes causal attention of each query token over its sequence's
    whole context (cached tokens plus this step's tokens up to and including itself).
    The stores must come before any read: a speculative verification step gives each of
    a sequence's rows as a one-token sequence of its own over the same blocks, its
    context ending at its position, and row ``j`` reads the keys rows before it stored.
    """

    name: ClassVar[str] = ""
    #: whether the fused CPU decode step (``fw.engine.fused_decode``) may compute this
    #: backend's attention: its C kernels read and write the same paged cache in place
    fused_cpu_decode: ClassVar[bool] = False
    #: how this layer's cache stores keys and values (set with the cache's allocation)
    kv_format: KVCacheFormat = KVCacheFormat()

    def __init__(
        self,
        num_heads: int,
        head_size: int,
        num_kv_heads: int,
        scale: float,
        *,
        sliding_window: int | None = None,
        logits_soft_cap: float | None = None,
    ):
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
        self.num_heads = num_heads
        self.head_size = head_size
        self.num_kv_heads = num_kv_heads
        self.scale = scale
        self.sliding_window = sliding_window
        self.logits_soft_cap = logits_soft_cap

    @classmethod
    def supports(cls, device: torch.device) -> bool:
        """Whether this backend can run on ``device`` (used by ``--attention-backend auto``)."""
        return True

    @classmethod
    def supports_kv_format(cls, kv_format: KVCacheFormat) -> bool:
        """Whether this backend reads and writes caches of ``kv_format`` (``--kv-cache-dtype``)."""
        return not kv_format.quantized

    @classmethod
    def priority(cls, device: torch.device) -> int:
        """Higher wins when ``auto`` picks among backends that support the device."""
        return 0

    @abstractmethod
    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        """query [T, num_heads, head_size], key/value [T, num_kv_heads, head_size],
        kv_cache of ``self.kv_format`` (``fw.attention.kv_format``): [2, num_blocks,
        block_size, num_kv_heads, head_size] unquantized;
        returns [T, num_heads, head_size]."""
