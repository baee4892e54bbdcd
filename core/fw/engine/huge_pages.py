"""Large CPU buffers backed by 2 MiB pages where Linux allows it, zeroed without writing.

A decode step reads the whole KV cache, scattered over thousands of blocks; with 4 KiB
pages nearly every block costs TLB misses on top of its cache misses. Linux hands out
transparent huge pages to regions marked ``MADV_HUGEPAGE`` (the common ``madvise``
setting), so the buffer is marked before it is first written.

Its whole pages are then zeroed by the kernel rather than written: ``MADV_DONTNEED``
drops them, and an anonymous page that comes back reads as zeros. Writing 2 GiB of
zeros took 6 s of a 28 s start; this way a page costs time and memory only once a
request writes into it, or ``fw.engine.prefault`` faults it in in time the CPU has spare.
The partial pages at either end (shared with other allocations) are written. Anywhere
else (another OS, a device tensor) this is a plain ``zero_()``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import sys

import torch

HUGE_PAGE = 2 << 20
MADV_HUGEPAGE = 14
MADV_DONTNEED = 4


@functools.cache
def libc_or_none():
    """The C library (for ``madvise``) on Linux, else None: the callers then do without."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def zeros(*shape: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """``torch.zeros(shape)``; on a Linux CPU its whole 2 MiB pages are marked for huge pages
    and its memory is left untouched until used."""
    return advise_and_zero(torch.empty(*shape, dtype=dtype, device=device))


def release_free_memory() -> None:
    """Hand memory the allocator holds but no tensor uses back to the OS (glibc's
    ``malloc_trim``), so freed weights and caches leave the process's RSS."""
    libc = libc_or_none()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(ctypes.c_size_t(0))


def advise_and_zero(tensor: torch.Tensor) -> torch.Tensor:
    """Mark ``tensor``'s whole 2 MiB pages for huge pages (Linux, CPU), then zero it: its
    whole pages by handing them back to the kernel, the partial ones at its ends by writing."""
    libc = libc_or_none()
    if tensor.device.type != "cpu" or libc is None or not tensor.is_contiguous():
        return tensor.zero_()
    begin = tensor.data_ptr()
    nbytes = tensor.numel() * tensor.element_size()
    start = -(-begin // HUGE_PAGE) * HUGE_PAGE
    end = (begin + nbytes) // HUGE_PAGE * HUGE_PAGE
    if end > start:  # advice only: a refusal leaves ordinary pages
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_HUGEPAGE)
    page = mmap.PAGESIZE
    first, last = -(-begin // page) * page, (begin + nbytes) // page * page
    flat = tensor.view(-1).view(torch.uint8)
    if last <= first or libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), MADV_DONTNEED) != 0:
        return tensor.zero_()
    flat[:first - begin].zero_()
    flat[last - begin:].zero_()
    return tensor
