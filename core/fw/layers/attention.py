"""The attention layer models use. It stores nothing about the batch: the runner binds
its KV cache (``kv_cache``) once at start-up and publishes each step's batch layout in
``fw.attention.context``; the backend chosen for the engine does the work."""

from __future__ import annotations

import torch
from torch import nn

from fw.attention.context import get_forward_context
from fw.attention.kv_format import KVCacheFormat
from fw.errors import ConfigurationError
from fw.models.interface import ModelContext


class Attention(nn.Module):
    def __init__(self, num_heads: int, head_size: int, scale: float, num_kv_heads: int,
                 context: ModelContext, *, sliding_window: int | None = None,
                 logits_soft_cap: float | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.head_size = head_size
        self.num_kv_heads = num_kv_heads
        self.sliding_window = sliding_window
        self.impl = context.attention_backend(
            num_heads, head_size, num_kv_heads, scale,
            sliding_window=sliding_window, logits_soft_cap=logits_soft_cap,
        )
        #: keys and values by block id (``fw.attention.kv_format`` has the shapes), bound by the runner
        self.kv_cache: torch.Tensor | None = None

    def set_heads(self, num_heads: int, num_kv_heads: int) -> None:
        """Serve only this many query and KV heads (a tensor-parallel rank's share): the
        backend is rebuilt for them with the same scale, window and soft cap. Before any
        KV cache is bound, since the cache's shape follows the KV heads."""
        if self.kv_cache is not None:
            raise RuntimeError("set_heads after the KV cache was bound")
        impl = self.impl
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.impl = type(impl)(num_heads, self.head_size, num_kv_heads, impl.scale,
                               sliding_window=impl.sliding_window, logits_soft_cap=impl.logits_soft_cap)
        self.impl.kv_format = impl.kv_format

    def set_kv_format(self, kv_format: KVCacheFormat) -> None:
        """Store keys and values in ``kv_format`` (before the cache of that format is bound);
        refused in one line when the attention backend cannot read it."""
        if not self.impl.supports_kv_format(kv_format):
            raise ConfigurationError(
                f"--kv-cache-dtype: the {self.impl.name} attention backend does not read a KV cache of "
                f"{kv_format.describe()}; use the torch backend (the CPU) or --kv-cache-dtype auto")
        self.impl.kv_format = kv_format

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """query [T, Hq*D], key/value [T, Hkv*D] -> [T, Hq*D]."""
        if self.kv_cache is None:
            raise RuntimeError("attention layer has no KV cache bound; the model runner binds it")
        tokens = query.shape[0]
        q = query.view(tokens, self.num_heads, self.head_size)
        k = key.view(tokens, self.num_kv_heads, self.head_size)
        v = value.view(tokens, self.num_kv_heads, self.head_size)
        out = self.impl.forward(q, k, v, self.kv_cache, get_forward_context().metadata)
        return out.reshape(tokens, self.num_heads * self.head_size)
