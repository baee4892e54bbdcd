"""The GPU attention backend: the ``fw_kernels`` Triton kernels over the paged KV layout.

Chosen automatically on CUDA. On the CPU it runs only under ``TRITON_INTERPRET=1`` (set
before ``fw_kernels`` is imported) and ranks below the torch backend there: the
interpreter is for checking the kernels, not for serving.

Triton is imported when a kernel first runs, not when the backend is asked whether it
runs here: choosing the torch backend on a CPU should not cost Triton's import (0.3-1 s
of start-up).
"""

from __future__ import annotations

import os
import sys

import torch

from fw.attention.backend import AttentionBackend
from fw.attention.metadata import AttentionMetadata

#: the kernels' names -> their modules; imported on first use, as attributes of this
#: module (tests may set their own first)
_KERNELS = {"write_kv": "fw_kernels.kv_write", "write_kv_quant": "fw_kernels.kv_write",
            "paged_attention_decode": "fw_kernels.decode", "paged_attention_prefill": "fw_kernels.prefill"}


def _kernel(name: str):
    return getattr(sys.modules[__name__], name)


def interpreted() -> bool:
    """Whether the kernels run on Triton's CPU interpreter; without TRITON_INTERPRET in the
    environment (and fw_kernels not yet imported) they cannot, and Triton stays unloaded."""
    if "fw_kernels.common" not in sys.modules and not os.environ.get("TRITON_INTERPRET"):
        return False
    from fw_kernels.common import INTERPRETED

    return INTERPRETED


def __getattr__(name: str):
    if name in _KERNELS:
        import importlib

        value = getattr(importlib.import_module(_KERNELS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class TritonAttentionBackend(AttentionBackend):
    name = "triton"

    @classmethod
    def supports(cls, device: torch.device) -> bool:
        device = torch.device(device)
        return device.type == "cuda" or (device.type == "cpu" and interpreted())

    @classmethod
    def supports_kv_format(cls, kv_format) -> bool:
        return True  # int8 and fp8 e4m3 codes with their scales (fw_kernels.kv_codes)

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
        if self.kv_format.quantized:  # [2, blocks, kv_heads, block_size, row]: the kernels take token-major views
            _kernel("write_kv_quant")(key, value, kv_cache, metadata.slot_mapping, self.kv_format.code,
                                      self.kv_format.dynamic_scales)
            key_cache, value_cache = kv_cache[0].transpose(1, 2), kv_cache[1].transpose(1, 2)
        else:
            key_cache, value_cache = kv_cache[0], kv_cache[1]
            _kernel("write_kv")(key, value, key_cache, value_cache, metadata.slot_mapping)
        if metadata.is_pure_decode:
            return _kernel("paged_attention_decode")(
                query, key_cache, value_cache, metadata.block_table, metadata.seq_lens, self.scale,
                sliding_window=self.sliding_window, soft_cap=self.logits_soft_cap,
                max_seq_len=metadata.max_seq_len,
            )
        return _kernel("paged_attention_prefill")(
            query, key_cache, value_cache, metadata.block_table, metadata.query_start_loc,
            metadata.seq_lens, self.scale, sliding_window=self.sliding_window,
            soft_cap=self.logits_soft_cap, max_query_len=metadata.max_query_len,
        )
