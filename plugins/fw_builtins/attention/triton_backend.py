"""The GPU attention backend: the ``fw_kernels`` Triton kernels over the paged KV layout.

Chosen automatically on CUDA. On the CPU it runs only under ``TRITON_INTERPRET=1`` (set
before ``fw_kernels`` is imported) and ranks below the torch backend there: the
interpreter is for checking the kernels, not for serving.
"""

from __future__ import annotations

import torch

from fw.attention.backend import AttentionBackend
from fw.attention.metadata import AttentionMetadata
from fw_kernels.common import INTERPRETED
from fw_kernels.decode import paged_attention_decode
from fw_kernels.kv_write import write_kv
from fw_kernels.prefill import paged_attention_prefill


class TritonAttentionBackend(AttentionBackend):
    name = "triton"

    @classmethod
    def supports(cls, device: torch.device) -> bool:
        device = torch.device(device)
        return device.type == "cuda" or (device.type == "cpu" and INTERPRETED)

    @classmethod
    def priority(cls, device: torch.device) -> int:
        # Above the torch backend (10 on CPU, 0 elsewhere) on CUDA, below it on the CPU.
        return 20 if torch.device(device).type == "cuda" else 0

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        kv_cache: torch.Tensor,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        key_cache, value_cache = kv_cache[0], kv_cache[1]
        write_kv(key, value, key_cache, value_cache, metadata.slot_mapping)
        if metadata.is_pure_decode:
            return paged_attention_decode(
                query, key_cache, value_cache, metadata.block_table, metadata.seq_lens, self.scale,
                sliding_window=self.sliding_window, soft_cap=self.logits_soft_cap,
                max_seq_len=metadata.max_seq_len,
            )
        return paged_attention_prefill(
            query, key_cache, value_cache, metadata.block_table, metadata.query_start_loc,
            metadata.seq_lens, self.scale, sliding_window=self.sliding_window,
            soft_cap=self.logits_soft_cap, max_query_len=metadata.max_query_len,
        )
