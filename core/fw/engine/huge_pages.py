"""Large CPU buffers backed by 2 MiB pages where Linux allows it.

A decode step reads the whole KV cache, scattered over thousands of blocks; with 4 KiB
pages nearly every block costs TLB misses on top of its cache misses. Linux hands out
transparent huge pages to regions marked ``MADV_HUGEPAGE`` (the common ``madvise``
setting), so the buffer is marked before it is first written. Anywhere else (another
OS, huge pages off, a device tensor) this is a plain ``torch.zeros``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

import torch

HUGE_PAGE = 2 << 20
MADV_HUGEPAGE = 14


@functools.cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def zeros(*shape: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """``torch.zeros(shape)``; on a Linux CPU its whole 2 MiB pages are marked for huge pages
    before the zeros are written."""
    return advise_and_zero(torch.empty(*shape, dtype=dtype, device=device))


def release_free_memory() -> None:
    """Hand memory the allocator holds but no tensor uses back to the OS (glibc's
    ``malloc_trim``), so freed weights and caches leave the process's RSS."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(ctypes.c_size_t(0))


def advise_and_zero(tensor: torch.Tensor) -> torch.Tensor:
    """Mark ``tensor``'s whole 2 MiB pages for huge pages (Linux, CPU), then zero it."""
    libc = _libc()
    if tensor.device.type == "cpu" and libc is not None:
        begin = tensor.data_ptr()
        start = -(-begin // HUGE_PAGE) * HUGE_PAGE
        end = (begin + tensor.numel() * tensor.element_size()) // HUGE_PAGE * HUGE_PAGE
        if end > start:  # advice only: a refusal leaves ordinary pages
            libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_HUGEPAGE)
    return tensor.zero_()
