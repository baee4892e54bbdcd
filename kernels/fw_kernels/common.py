"""Checks and helpers shared by the kernels' launch wrappers.

Triton reads ``TRITON_INTERPRET`` when a kernel is *decorated*, i.e. when ``fw_kernels``
is imported; ``INTERPRETED`` records that choice so a wrong setup fails with a clear
message instead of deep inside Triton.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

#: whether this process's kernels run on Triton's CPU interpreter
INTERPRETED: bool = bool(triton.knobs.runtime.interpret)

_TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


def check_device(*tensors: torch.Tensor) -> None:
    """Kernels run on CUDA, or anywhere under the interpreter."""
    for t in tensors:
        if t.device.type != "cuda" and not INTERPRETED:
            raise ValueError(
                f"fw_kernels got a tensor on {t.device}; the Triton kernels need a CUDA device, or "
                "TRITON_INTERPRET=1 set before fw_kernels is imported to run on the CPU"
            )


def check_dtype(name: str, t: torch.Tensor, expected: torch.dtype | None = None) -> None:
    if t.dtype not in _TL_DTYPES:
        raise ValueError(f"{name} has unsupported dtype {t.dtype}; supported: float32, float16, bfloat16")
    if expected is not None and t.dtype != expected:
        raise ValueError(f"{name} has dtype {t.dtype} but the query/cache dtype is {expected}")


def check_last_dim_contiguous(**tensors: torch.Tensor) -> None:
    """Kernels take any strides except along head_size, which must be packed."""
    for name, t in tensors.items():
        if t.stride(-1) != 1:
            raise ValueError(f"{name} must be contiguous in its last (head_size) dimension")


def check_cache(key_cache: torch.Tensor, value_cache: torch.Tensor, num_kv_heads: int, head_size: int,
                quantized: bool = False) -> int:
    """Validate the paged layout ``[num_blocks, block_size, num_kv_heads, head_size]`` (a
    quantized cache's, ``fw.attention.kv_format``: rows of head_size codes and a 4-byte
    scale, int8 or uint8, seen as [num_blocks, block_size, num_kv_heads, head_size + 4]);
    returns block_size."""
    row = head_size + 4 if quantized else head_size
    if key_cache.dim() != 4 or key_cache.shape != value_cache.shape:
        raise ValueError(
            f"key/value caches must both be [num_blocks, block_size, num_kv_heads, head_size]; "
            f"got {tuple(key_cache.shape)} and {tuple(value_cache.shape)}"
        )
    if tuple(key_cache.shape[2:]) != (num_kv_heads, row):
        raise ValueError(
            f"the cache's (num_kv_heads, head_size) {tuple(key_cache.shape[2:])} does not match "
            f"the inputs' ({num_kv_heads}, {row})"
        )
    if quantized:
        if value_cache.dtype != key_cache.dtype or key_cache.dtype not in (torch.int8, torch.uint8):
            raise ValueError(f"a quantized cache is int8 or uint8 codes, got {key_cache.dtype} and {value_cache.dtype}")
    else:
        check_dtype("value_cache", value_cache, key_cache.dtype)
    return key_cache.shape[1]


def compute_dtype(dtype: torch.dtype):
    """The dtype ``tl.dot`` operands are cast to.

    The interpreter multiplies bfloat16 bit patterns instead of values
    (triton-lang/triton#11584), so under it bfloat16 operands are widened to float32; on a
    GPU the storage dtype feeds the tensor cores directly.
    """
    if dtype == torch.bfloat16 and INTERPRETED:
        return tl.float32
    return _TL_DTYPES[dtype]


def dot_block(n: int) -> int:
    """A power-of-two tile edge that covers ``n`` and is at least 16, ``tl.dot``'s minimum."""
    return max(16, triton.next_power_of_2(n))


def check_tile(name: str, n: int) -> None:
    """Tile edges are ``tl.arange`` lengths (powers of two) and ``tl.dot`` operands (>= 16)."""
    if n < 16 or n & (n - 1):
        raise ValueError(f"{name} must be a power of two >= 16, got {n}")


def check_window_and_cap(sliding_window: int | None, soft_cap: float | None) -> None:
    if sliding_window is not None and sliding_window < 1:
        raise ValueError(f"sliding_window must be >= 1, got {sliding_window}")
    if soft_cap is not None and soft_cap <= 0:
        raise ValueError(f"soft_cap must be > 0, got {soft_cap}")


@triton.jit
def apply_soft_cap(s, cap):
    """``cap * tanh(s / cap)``; tanh as ``2*sigmoid(2x) - 1`` (Triton has no portable tanh)."""
    return cap * (2.0 * tl.sigmoid(2.0 * s / cap) - 1.0)
