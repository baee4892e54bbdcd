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


def start_cpu_build() -> None:
    """Begin compiling fw's CPU kernels in the background (``fw_kernels.cpu.build.start``),
    without importing torch first: a first start compiles while it imports torch (~2 s).
    Nothing happens where they are built already, turned off, or where a CUDA device is
    present (it runs the Triton kernels)."""
    import os
    import sys

    if os.path.exists("/dev/nvidiactl"):
        return
    name = "fw_kernels.cpu.build"
    module = sys.modules.get(name)
    if module is None:
        # fw_kernels.cpu's __init__ imports torch; the build module alone does not. It is
        # registered under its own name, so the package imports this very instance later.
        import importlib.util
        from pathlib import Path

        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "cpu" / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    module.start()


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fw_kernels' has no attribute {name!r}")
