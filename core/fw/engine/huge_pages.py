"""Large CPU buffers backed by 2 MiB pages where Linux allows it, and never touched up front.

A decode step reads the whole KV cache, scattered over thousands of blocks; with 4 KiB
pages nearly every block costs TLB misses on top of its cache misses. Linux hands out
transparent huge pages to regions marked ``MADV_HUGEPAGE`` (the common ``madvise``
setting), so the buffer is marked before it is first written.

The buffer is a fresh anonymous memory mapping, which the kernel guarantees reads as
zeros: nothing is written at start-up (zeroing a 2 GiB cache took 6 s of a 28 s start),
and a page costs memory only once a request writes into it. Anywhere else (another OS, a
device tensor) this is a plain ``torch.zeros``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import mmap
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
    """``torch.zeros(shape)``; on a Linux CPU, an untouched anonymous mapping aligned to
    2 MiB whose whole huge pages are marked for huge pages."""
    libc = _libc()
    if torch.device(device).type != "cpu" or libc is None:
        return torch.zeros(*shape, dtype=dtype, device=device)
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    mapping = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    whole = torch.frombuffer(mapping, dtype=torch.uint8)  # keeps the mapping alive
    offset = -whole.data_ptr() % HUGE_PAGE
    tensor = whole[offset:offset + nbytes].view(dtype).view(*shape)
    begin = tensor.data_ptr()
    start = -(-begin // HUGE_PAGE) * HUGE_PAGE
    end = (begin + nbytes) // HUGE_PAGE * HUGE_PAGE
    if end > start:  # advice only: a refusal leaves ordinary pages
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_HUGEPAGE)
    return tensor
