"""fw_kernels: Triton kernels for paged attention, with torch reference twins, and fused
CPU kernels (``fw_kernels.cpu``).

Set ``TRITON_INTERPRET=1`` *before* importing the Triton kernels to run them on the CPU
(Triton decides at decoration time). ``fw_kernels.reference`` holds the plain-torch twins.
The Triton names below load on first use, so ``fw_kernels.cpu`` does not import Triton.
"""

import importlib

_LAZY = {
    "INTERPRETED": "fw_kernels.common",
    "paged_attention_decode": "fw_kernels.decode",
    "paged_attention_prefill": "fw_kernels.prefill",
    "write_kv": "fw_kernels.kv_write",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fw_kernels' has no attribute {name!r}")
