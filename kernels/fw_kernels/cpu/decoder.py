"""The fused decoder stack of ``decoder.c``, for decode steps of a few tokens.

A model plugin describes its layers with ``DecoderLayer`` (tensors it already holds: its
projections' packed weights, its norms, its KV cache) and ``DecoderShape``; a
``FusedDecoder`` keeps the C structs pointing at them and runs every layer in one call.
Each projection runs from int4 blocks up to ``MAX_GEMV_ROWS`` rows and from int8 or dense
bf16 panels beyond, as the quantization methods do layer by layer.
The tensors must stay alive and in place while the decoder is used, which they do as
model parameters and bound caches.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch

from fw_kernels.cpu import MAX_GEMV_ROWS, library

_PROJECTIONS = ("qkv", "o", "gate_up", "down")
_SIZES = ("layers", "hidden", "heads", "kv_heads", "head_size", "intermediate", "rotary_dim", "block_size", "window")


class _Projection(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in ("int4", "params", "int8", "scales", "dense", "bias")]


class _Layer(ctypes.Structure):
    _fields_ = ([(name, ctypes.c_void_p) for name in ("input_norm", "post_norm", "q_norm", "k_norm")]
                + [(name, _Projection) for name in _PROJECTIONS]
                + [(name, ctypes.c_void_p) for name in ("key_cache", "value_cache")])


class _Decoder(ctypes.Structure):
    _fields_ = ([(name, ctypes.c_int64) for name in _SIZES]
                + [("eps", ctypes.c_float), ("scale", ctypes.c_float), ("soft_cap", ctypes.c_float),
                   ("cos_sin", ctypes.c_void_p), ("final_norm", ctypes.c_void_p), ("layer", ctypes.POINTER(_Layer))])


@dataclass
class Projection:
    #: ``packing.pack_int4`` blocks, used up to MAX_GEMV_ROWS rows
    int4: tuple[torch.Tensor, torch.Tensor] | None = None
    #: ``packing.pack_int8_panels``, used beyond (and always without int4)
    int8: tuple[torch.Tensor, torch.Tensor] | None = None
    #: ``packing.pack_bf16_panels``, used beyond where int8 panels are absent
    dense: torch.Tensor | None = None
    bias: torch.Tensor | None = None

    def max_rows(self) -> int | None:
        """The most rows this projection can take (None: any)."""
        if self.int8 is not None or self.dense is not None:
            return None
        return MAX_GEMV_ROWS if self.int4 is not None else 0


@dataclass
class DecoderLayer:
    input_norm: torch.Tensor
    post_norm: torch.Tensor
    #: the merged q/k/v, output, merged gate/up and down projections
    qkv: Projection
    o: Projection
    gate_up: Projection
    down: Projection
    #: [2, blocks, block_size, kv_heads, head_size], contiguous
    kv_cache: torch.Tensor
    #: per-head RMSNorm weights of queries and keys (Qwen3)
    q_norm: torch.Tensor | None = None
    k_norm: torch.Tensor | None = None


@dataclass
class DecoderShape:
    hidden: int
    heads: int
    kv_heads: int
    head_size: int
    intermediate: int
    rotary_dim: int
    eps: float
    scale: float
    #: float32 [max_position, rotary_dim]: cosines then sines
    cos_sin: torch.Tensor
    final_norm: torch.Tensor
    sliding_window: int | None = None
    soft_cap: float | None = None


def _address(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


class FusedDecoder:
    def __init__(self, layers: list[DecoderLayer], shape: DecoderShape):
        self.dtype = shape.final_norm.dtype
        self._layers = (_Layer * len(layers))()
        limits = []
        for struct, layer in zip(self._layers, layers):
            for name in ("input_norm", "post_norm", "q_norm", "k_norm"):
                setattr(struct, name, _address(getattr(layer, name)))
            for name in _PROJECTIONS:
                projection, target = getattr(layer, name), getattr(struct, name)
                packed, params = projection.int4 or (None, None)
                target.int4, target.params = _address(packed), _address(params)
                panels, scales = projection.int8 or (None, None)
                target.int8, target.scales = _address(panels), _address(scales)
                target.dense, target.bias = _address(projection.dense), _address(projection.bias)
                limits.append(projection.max_rows())
            struct.key_cache, struct.value_cache = layer.kv_cache[0].data_ptr(), layer.kv_cache[1].data_ptr()
        self._struct = _Decoder(
            layers=len(layers), hidden=shape.hidden, heads=shape.heads, kv_heads=shape.kv_heads,
            head_size=shape.head_size, intermediate=shape.intermediate, rotary_dim=shape.rotary_dim,
            block_size=layers[0].kv_cache.shape[2], window=shape.sliding_window or 0, eps=shape.eps,
            scale=shape.scale, soft_cap=shape.soft_cap or 0.0, cos_sin=shape.cos_sin.data_ptr(),
            final_norm=shape.final_norm.data_ptr(), layer=self._layers)
        self._keep = (layers, shape)  # the tensors the structs point into
        #: the most rows (tokens) a call may have; None: any
        self.max_rows = None if all(limit is None for limit in limits) else min(l for l in limits if l is not None)
        suffix = {torch.float32: "f32", torch.bfloat16: "bf16"}[self.dtype]
        self._run = getattr(library(), f"fw_decoder_decode_{suffix}")
        P, I = ctypes.c_void_p, ctypes.c_int64
        self._run.argtypes = [P, P, P, I, P, P, P, I, P, I]
        self._run.restype = None

    def __call__(self, embedded: torch.Tensor, positions: torch.Tensor, slot_mapping: torch.Tensor,
                 block_table: torch.Tensor, seq_lens: torch.Tensor, max_len: int) -> torch.Tensor:
        """The final-normed hidden states [rows, hidden] of a pure decode step, from the
        token embeddings [rows, hidden] (rows <= max_rows); KV caches are written."""
        rows = embedded.shape[0]
        if self.max_rows is not None and rows > self.max_rows:
            raise ValueError(f"this fused decoder takes at most {self.max_rows} tokens, got {rows}")
        embedded = embedded.contiguous()
        out = torch.empty_like(embedded)
        self._run(ctypes.addressof(self._struct), embedded.data_ptr(), out.data_ptr(), rows, positions.data_ptr(),
                  slot_mapping.data_ptr(), block_table.data_ptr(), block_table.stride(0), seq_lens.data_ptr(),
                  max_len)
        return out
