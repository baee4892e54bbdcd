"""The fused decoder stack of ``decoder.c``, for decode steps of a few tokens.

A model's layers are described with ``DecoderLayer`` (tensors it already holds: its
projections' packed weights, its norms, its KV cache, its rotary table) and
``DecoderShape``; a ``FusedDecoder`` keeps the C structs pointing at them and runs every
layer in one call. Each projection runs from int4 blocks up to ``MAX_GEMV_ROWS`` rows and
from int8 or dense bf16 panels beyond, as the quantization methods do layer by layer.
The tensors must stay alive and in place while the decoder is used, which they do as
model parameters and bound caches.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import torch

from fw_kernels.cpu import library
from fw_kernels.cpu.moe import FusedMoE
from fw_kernels.cpu.projection import GATES, Projection, ProjectionStruct, address, max_rows

__all__ = ["DecoderLayer", "DecoderShape", "FusedDecoder", "Projection"]

_PROJECTIONS = ("qkv", "o", "gate_up", "down")
_NORMS = ("input_norm", "post_norm", "q_norm", "k_norm", "attn_out_norm", "mlp_out_norm")
_SIZES = ("layers", "hidden", "heads", "kv_heads", "head_size", "intermediate", "rotary_dim", "block_size",
          "activation")


class _Layer(ctypes.Structure):
    _fields_ = ([(name, ctypes.c_void_p) for name in _NORMS]
                + [(name, ProjectionStruct) for name in _PROJECTIONS]
                + [(name, ctypes.c_void_p) for name in ("moe", "key_cache", "value_cache", "cos_sin")]
                + [("window", ctypes.c_int64)])


class _Decoder(ctypes.Structure):
    _fields_ = ([(name, ctypes.c_int64) for name in _SIZES]
                + [(name, ctypes.c_float) for name in ("eps", "norm_offset", "scale", "soft_cap")]
                + [("final_norm", ctypes.c_void_p), ("layer", ctypes.POINTER(_Layer))]
                + [(name, ctypes.c_int64) for name in ("kv_kind", "kv_dynamic")])


@dataclass
class DecoderLayer:
    input_norm: torch.Tensor
    post_norm: torch.Tensor
    #: the merged q/k/v and output projections
    qkv: Projection
    o: Projection
    #: contiguous: [2, blocks, block_size, kv_heads, head_size], or with ``DecoderShape.kv_kind``
    #: [2, blocks, kv_heads, block_size, head_size + 4] bytes (codes and a scale per row)
    kv_cache: torch.Tensor
    #: float32 [max_position, rotary_dim]: cosines then sines, this layer's
    cos_sin: torch.Tensor
    #: the merged gate/up and down projections, or a mixture of experts in their place
    gate_up: Projection | None = None
    down: Projection | None = None
    moe: FusedMoE | None = None
    #: per-head RMSNorm weights of queries and keys (Qwen3, Gemma 3)
    q_norm: torch.Tensor | None = None
    k_norm: torch.Tensor | None = None
    #: norms of the attention and MLP outputs before their residual add (Gemma 2/3)
    attn_out_norm: torch.Tensor | None = None
    mlp_out_norm: torch.Tensor | None = None
    #: this layer's sliding window (None: full attention)
    sliding_window: int | None = None

    def projections(self) -> list[Projection]:
        dense = [self.gate_up, self.down] if self.moe is None else []
        return [self.qkv, self.o, *dense]


@dataclass
class DecoderShape:
    hidden: int
    heads: int
    kv_heads: int
    head_size: int
    #: the dense MLPs' intermediate size (0 when every layer is a mixture of experts)
    intermediate: int
    rotary_dim: int
    eps: float
    scale: float
    final_norm: torch.Tensor
    soft_cap: float | None = None
    #: the gating activation between gate/up and down (``GATES``)
    activation: str = "silu"
    #: norms compute ``rms_norm(x) * (norm_offset + weight)`` (Gemma: 1)
    norm_offset: float = 0.0
    #: the KV caches' rows (``fw.attention.kv_format.KIND_CODES``: 0 the model dtype, 1 int8
    #: codes, 2 fp8 e4m3 codes, each then a float32 scale) and whether fp8 scales are per row
    kv_kind: int = 0
    kv_dynamic: bool = False


class FusedDecoder:
    def __init__(self, layers: list[DecoderLayer], shape: DecoderShape):
        self.dtype = shape.final_norm.dtype
        self._layers = (_Layer * len(layers))()
        projections, moe_limits = [], []
        for struct, layer in zip(self._layers, layers):
            for name in _NORMS:
                setattr(struct, name, address(getattr(layer, name)))
            for name in _PROJECTIONS:
                projection = getattr(layer, name)
                if projection is not None:
                    projection.fill(getattr(struct, name))
            projections += layer.projections()
            if layer.moe is not None:
                struct.moe = layer.moe.address
                moe_limits.append(layer.moe.max_rows)
            struct.key_cache, struct.value_cache = layer.kv_cache[0].data_ptr(), layer.kv_cache[1].data_ptr()
            struct.cos_sin, struct.window = layer.cos_sin.data_ptr(), layer.sliding_window or 0
        self._struct = _Decoder(
            layers=len(layers), hidden=shape.hidden, heads=shape.heads, kv_heads=shape.kv_heads,
            head_size=shape.head_size, intermediate=shape.intermediate, rotary_dim=shape.rotary_dim,
            block_size=layers[0].kv_cache.shape[3 if shape.kv_kind else 2], activation=GATES[shape.activation], eps=shape.eps,
            norm_offset=shape.norm_offset, scale=shape.scale, soft_cap=shape.soft_cap or 0.0,
            final_norm=shape.final_norm.data_ptr(), layer=self._layers, kv_kind=shape.kv_kind,
            kv_dynamic=int(shape.kv_dynamic))
        self._keep = (layers, shape)  # the tensors the structs point into
        limits = [limit for limit in [max_rows(projections), *moe_limits] if limit is not None]
        #: the most rows (tokens) a call may have; None: any
        self.max_rows = min(limits) if limits else None
        suffix = {torch.float32: "f32", torch.bfloat16: "bf16"}[self.dtype]
        self._run = getattr(library(), f"fw_decoder_decode_{suffix}")
        P, I = ctypes.c_void_p, ctypes.c_int64
        self._run.argtypes = [P, P, P, I, P, P, P, I, P, I, I]
        self._run.restype = None

    def __call__(self, embedded: torch.Tensor, positions: torch.Tensor, slot_mapping: torch.Tensor,
                 block_table: torch.Tensor, seq_lens: torch.Tensor, max_len: int, *,
                 prefetch_kv: bool) -> torch.Tensor:
        """The final-normed hidden states [rows, hidden] of a step's tokens, from their
        embeddings [rows, hidden] (rows <= max_rows), each token a sequence of its own to
        attention (block_table and seq_lens have a row per token); KV caches are written.
        ``prefetch_kv``: whether the projections prefetch the next attention's KV blocks
        (for a decode step; a prompt's tokens would list the same blocks many times)."""
        rows = embedded.shape[0]
        if self.max_rows is not None and rows > self.max_rows:
            raise ValueError(f"this fused decoder takes at most {self.max_rows} tokens, got {rows}")
        embedded = embedded.contiguous()
        out = torch.empty_like(embedded)
        self._run(ctypes.addressof(self._struct), embedded.data_ptr(), out.data_ptr(), rows, positions.data_ptr(),
                  slot_mapping.data_ptr(), block_table.data_ptr(), block_table.stride(0), seq_lens.data_ptr(),
                  max_len, int(prefetch_kv))
        return out
