"""fw's fused CPU kernels (C sources in this folder), called through ctypes on torch tensors.

Each function takes and returns torch tensors like the torch code it replaces; callers
first check ``supports(...)`` and otherwise keep their torch path, so fw runs (slower)
where the library cannot be built. Tensors must be on the CPU, float32 or bfloat16, with
unit stride along their last dimension.
"""

from __future__ import annotations

import ctypes
import functools

import torch

from fw_kernels.cpu.build import library

_P, _I, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
_SIGNATURES = {
    "add_rms_norm": [_P, _P, _P, _P, _I, _I, _F, _F],
    "silu_and_mul": [_P, _P, _I, _I],
    "gelu_tanh_and_mul": [_P, _P, _I, _I],
    "rope_neox": [_P, _I, _P, _P, _I, _I, _I, _I],
    "write_kv": [_P, _I, _P, _I, _P, _P, _P, _I, _I],
    "paged_decode": [_P, _P, _I, _P, _P, _P, _I, _P, _I, _I, _I, _I, _I, _F, _I, _F, _I],
    "write_kv_quant": [_P, _I, _P, _I, _P, _P, _P, _I, _I, _I, _I, _I, _I],
    "paged_decode_quant": [_P, _P, _I, _P, _P, _P, _I, _P, _I, _I, _I, _I, _I, _F, _I, _F, _I, _I],
    "encoder_attention": [_P, _P, _I, _P, _P, _I, _P, _I, _I, _I, _F, _I],
    "int4_gemv": [_P, _P, _I, _P, _P, _P, _I, _I, _I, _I],
    "int8_gemv": [_P, _P, _I, _P, _P, _P, _I, _I, _I, _I],
    "dense_gemm": [_P, _P, _I, _P, _P, _I, _I, _I, _I],
    "int8_gemm": [_P, _P, _I, _P, _P, _P, _I, _I, _I, _I],
    "argmax": [_P, _I, _I, _P],
    "pack_int4": [_P, _I, _I, _P, _P],
    "pack_int8": [_P, _I, _I, _P, _P],
    "pack_int8_panels": [_P, _I, _I, _P, _P],
}
#: the input rows the quantized GEMV kernels take per pass over a tile of weights (and the
#: most a step reads them for where int8 or dense panels take larger steps)
MAX_GEMV_ROWS = 8
_SUFFIX = {torch.float32: "f32", torch.bfloat16: "bf16"}


@functools.cache
def _function(name: str, dtype: torch.dtype):
    fn = getattr(library(), f"fw_{name}_{_SUFFIX[dtype]}")
    fn.argtypes = _SIGNATURES[name]
    fn.restype = None
    return fn


def available() -> bool:
    return library() is not None


def _built(probe: str) -> bool:
    """Whether this build has an optional kernel (its ``fw_*_available()`` says)."""
    if not available():
        return False
    fn = getattr(library(), probe)
    fn.restype = ctypes.c_int
    return bool(fn())


@functools.cache
def dense_available() -> bool:
    """Whether the dense bf16 GEMM is built (it needs AVX512-BF16)."""
    return _built("fw_dense_available")


@functools.cache
def dense_f32_available() -> bool:
    """Whether the float32 GEMM of fixed summation order is built (any CPU the kernels build for)."""
    return available()


@functools.cache
def int8_gemm_available() -> bool:
    """Whether the int8 GEMM for batches is built (it needs AVX512-VNNI and AVX512-BF16)."""
    return _built("fw_int8_gemm_available")


def supports(*tensors: torch.Tensor) -> bool:
    """True when the kernels are built and every tensor is a CPU tensor of one supported dtype."""
    dtype = tensors[0].dtype
    return (dtype in _SUFFIX and available()
            and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors))


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor | None, weight: torch.Tensor, eps: float,
                 offset: float = 0.0) -> torch.Tensor:
    """``rms_norm(x + residual) * (offset + weight)`` in float32, storing ``x + residual``
    into ``residual`` (rounded to its dtype first, as the separate add would); without a
    residual, ``rms_norm(x) * (offset + weight)``. x and residual are contiguous [rows,
    hidden]; ``offset`` is 1 for Gemma's norms, which store their scale minus one."""
    rows, hidden = x.shape
    out = torch.empty_like(x)
    _function("add_rms_norm", x.dtype)(x.data_ptr(), 0 if residual is None else residual.data_ptr(),
                                       weight.data_ptr(), out.data_ptr(), rows, hidden, eps, offset)
    return out


def _gated(name: str, x: torch.Tensor) -> torch.Tensor:
    rows, width = x.shape
    out = x.new_empty(rows, width // 2)
    _function(name, x.dtype)(x.data_ptr(), out.data_ptr(), rows, width // 2)
    return out


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``silu(x[:, :n]) * x[:, n:]`` for contiguous x [rows, 2n]."""
    return _gated("silu_and_mul", x)


def gelu_tanh_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``gelu_tanh(x[:, :n]) * x[:, n:]`` (GELU's tanh approximation) for contiguous x [rows, 2n]."""
    return _gated("gelu_tanh_and_mul", x)


def rope_neox_(x: torch.Tensor, positions: torch.Tensor, cos_sin: torch.Tensor, heads: int, head_size: int,
               rotary_dim: int) -> None:
    """Rotate, in place, the first ``heads`` heads of each row of x [rows, >= heads *
    head_size] at ``positions`` (int64); ``cos_sin`` is float32 [max_position, rotary_dim]."""
    _function("rope_neox", x.dtype)(x.data_ptr(), x.stride(0), positions.data_ptr(), cos_sin.data_ptr(),
                                    x.shape[0], heads, head_size, rotary_dim)


def write_kv(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
             slot_mapping: torch.Tensor) -> None:
    """Store key/value [rows, kv_heads * head_size] (any row stride) at ``slot_mapping``
    (int64) of the contiguous caches [blocks, block_size, kv_heads, head_size]."""
    width = key_cache.shape[2] * key_cache.shape[3]
    _function("write_kv", key.dtype)(key.data_ptr(), key.stride(0), value.data_ptr(), value.stride(0),
                                     key_cache.data_ptr(), value_cache.data_ptr(), slot_mapping.data_ptr(),
                                     key.shape[0], width)


def paged_decode(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                 block_table: torch.Tensor, seq_lens: torch.Tensor, scale: float, *, max_len: int,
                 sliding_window: int | None = None, soft_cap: float | None = None) -> torch.Tensor:
    """Attention of one query token per sequence over its paged context.

    query [seqs, heads, head_size] (heads and head_size contiguous), caches [blocks,
    block_size, kv_heads, head_size] contiguous, block_table int32 [seqs, >= blocks used],
    seq_lens int32 [seqs] with ``max_len`` their maximum → [seqs, heads, head_size].
    """
    seqs, heads, head_size = query.shape
    kv_heads = key_cache.shape[2]
    out = query.new_empty(seqs, heads, head_size)
    _function("paged_decode", query.dtype)(
        out.data_ptr(), query.data_ptr(), query.stride(0), key_cache.data_ptr(), value_cache.data_ptr(),
        block_table.data_ptr(), block_table.stride(0), seq_lens.data_ptr(), seqs, kv_heads, heads // kv_heads,
        head_size, key_cache.shape[1], scale, sliding_window or 0, soft_cap or 0.0, max_len)
    return out


def write_kv_quant(key: torch.Tensor, value: torch.Tensor, kv_cache: torch.Tensor, slot_mapping: torch.Tensor,
                   kind: int, dynamic: bool) -> None:
    """Quantize and store key/value [rows, kv_heads * head_size] (any row stride) at
    ``slot_mapping`` (int64) of a contiguous quantized cache [2, blocks, kv_heads,
    block_size, head_size + 4] (``fw.attention.kv_format``; ``kind`` its kernel code,
    ``dynamic`` whether fp8 rows get their own scale)."""
    _, _, kv_heads, block_size, row = kv_cache.shape
    _function("write_kv_quant", key.dtype)(key.data_ptr(), key.stride(0), value.data_ptr(), value.stride(0),
                                           kv_cache[0].data_ptr(), kv_cache[1].data_ptr(), slot_mapping.data_ptr(),
                                           key.shape[0], kv_heads, block_size, row - 4, kind, int(dynamic))


def paged_decode_quant(query: torch.Tensor, kv_cache: torch.Tensor, kind: int, block_table: torch.Tensor,
                       seq_lens: torch.Tensor, scale: float, *, max_len: int, sliding_window: int | None = None,
                       soft_cap: float | None = None) -> torch.Tensor:
    """``paged_decode`` over a contiguous quantized cache [2, blocks, kv_heads, block_size,
    head_size + 4] whose codes are of ``kind`` (``fw.attention.kv_format.KIND_CODES``)."""
    seqs, heads, head_size = query.shape
    kv_heads, block_size = kv_cache.shape[2], kv_cache.shape[3]
    out = query.new_empty(seqs, heads, head_size)
    _function("paged_decode_quant", query.dtype)(
        out.data_ptr(), query.data_ptr(), query.stride(0), kv_cache[0].data_ptr(), kv_cache[1].data_ptr(),
        block_table.data_ptr(), block_table.stride(0), seq_lens.data_ptr(), seqs, kv_heads, heads // kv_heads,
        head_size, block_size, scale, sliding_window or 0, soft_cap or 0.0, max_len, kind)
    return out


def encoder_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, starts: torch.Tensor,
                      heads: int, scale: float, *, max_len: int) -> torch.Tensor:
    """Bidirectional attention within each prompt (encoders): query/key/value [tokens, heads *
    head_size] (any row stride, unit stride within a row; key and value share theirs),
    ``starts`` int64 [prompts + 1] the prompts' first rows and the end, ``max_len`` the
    longest prompt -> [tokens, heads * head_size]."""
    tokens, width = query.shape
    out = query.new_empty(tokens, width)
    _function("encoder_attention", query.dtype)(
        out.data_ptr(), query.data_ptr(), query.stride(0), key.data_ptr(), value.data_ptr(), key.stride(0),
        starts.data_ptr(), starts.shape[0] - 1, heads, width // heads, scale, max_len)
    return out


def _quantized_gemv(kind: str, x: torch.Tensor, packed: torch.Tensor, params: torch.Tensor,
                    bias: torch.Tensor | None, out_features: int, *extra) -> torch.Tensor:
    rows, k = x.shape
    out = x.new_empty(rows, out_features, dtype=torch.float32 if extra and extra[0] else x.dtype)
    _function(kind, x.dtype)(out.data_ptr(), x.data_ptr(), x.stride(0), packed.data_ptr(), params.data_ptr(),
                             0 if bias is None else bias.data_ptr(), rows, out_features, k, *extra)
    return out


def int4_gemv(x: torch.Tensor, packed: torch.Tensor, params: torch.Tensor, bias: torch.Tensor | None,
              out_features: int, *, float_output: bool = False) -> torch.Tensor:
    """``x @ W.T (+ bias)`` for x [rows, K] (unit stride along K; MAX_GEMV_ROWS rows per
    pass over a cached tile of weights) and W [out_features, K] packed by
    ``fw_kernels.cpu.packing.pack_int4``; with ``float_output`` the result is float32 (the
    sums unrounded), whatever x's dtype."""
    return _quantized_gemv("int4_gemv", x, packed, params, bias, out_features, int(float_output))


def int8_gemv(x: torch.Tensor, packed: torch.Tensor, params: torch.Tensor, bias: torch.Tensor | None,
              out_features: int, *, float_output: bool = False) -> torch.Tensor:
    """The same for W packed by ``fw_kernels.cpu.packing.pack_int8``; with
    ``float_output`` the result is float32 (the sums unrounded), whatever x's dtype."""
    return _quantized_gemv("int8_gemv", x, packed, params, bias, out_features, int(float_output))


def dense_gemm(x: torch.Tensor, panels: torch.Tensor, bias: torch.Tensor | None, out_features: int, *,
               float_output: bool = False) -> torch.Tensor:
    """``x @ W.T (+ bias)`` for bfloat16 x [rows, K] (even row stride, unit stride along K)
    and W [out_features, K] packed by ``fw_kernels.cpu.packing.pack_bf16_panels``; bfloat16,
    or float32 with ``float_output``."""
    rows, k = x.shape
    out = x.new_empty(rows, out_features, dtype=torch.float32 if float_output else torch.bfloat16)
    _function("dense_gemm", torch.bfloat16)(out.data_ptr(), x.data_ptr(), x.stride(0), panels.data_ptr(),
                                            0 if bias is None else bias.data_ptr(), rows, out_features, k,
                                            int(float_output))
    return out


def dense_gemm_f32(x: torch.Tensor, panels: torch.Tensor, bias: torch.Tensor | None,
                   out_features: int) -> torch.Tensor:
    """``x @ W.T (+ bias)`` for float32 x [rows, K] (unit stride along K) and W packed by
    ``fw_kernels.cpu.packing.pack_f32_panels``: every output summed over k in order, so a
    row's result does not depend on the other rows (``dense_f32.c``)."""
    rows, k = x.shape
    out = x.new_empty(rows, out_features)
    _function("dense_gemm", torch.float32)(out.data_ptr(), x.data_ptr(), x.stride(0), panels.data_ptr(),
                                           0 if bias is None else bias.data_ptr(), rows, out_features, k, 1)
    return out


def int8_gemm(x: torch.Tensor, panels: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None,
              out_features: int, *, float_output: bool = False) -> torch.Tensor:
    """``x @ W.T (+ bias)`` for bfloat16 x [rows, K] (unit stride along K, K a multiple of
    32) and W packed by ``fw_kernels.cpu.packing.pack_int8_panels``; x is quantized to int8
    per group of 32. bfloat16, or float32 with ``float_output``."""
    rows, k = x.shape
    out = x.new_empty(rows, out_features, dtype=torch.float32 if float_output else torch.bfloat16)
    _function("int8_gemm", torch.bfloat16)(out.data_ptr(), x.data_ptr(), x.stride(0), panels.data_ptr(),
                                           scales.data_ptr(), 0 if bias is None else bias.data_ptr(), rows,
                                           out_features, k, int(float_output))
    return out


def argmax(logits: torch.Tensor) -> torch.Tensor:
    """The first index of each row's largest value (int64 [rows]) of contiguous float32
    logits [rows, vocab]; NaN entries never win."""
    rows, cols = logits.shape
    out = torch.empty(rows, dtype=torch.int64, device="cpu")  # the C kernel writes it
    _function("argmax", torch.float32)(logits.data_ptr(), rows, cols, out.data_ptr())
    return out
