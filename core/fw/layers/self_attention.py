"""The self-attention block of a decoder layer: one merged q/k/v projection, optional
per-head RMSNorms of queries and keys, the rotary embedding, paged attention and the
output projection. Model plugins build their layers from it (a model plugin never imports
another), and the fused CPU decode reads its parts from a model's description."""

from __future__ import annotations

import torch
from torch import nn

from fw.layers.attention import Attention
from fw.layers.linear import Linear, MergedLinear
from fw.layers.norm import RMSNorm
from fw.layers.rotary import RotaryEmbedding
from fw.models.interface import ModelContext


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, head_dim: int, ctx: ModelContext, *,
                 rotary: RotaryEmbedding, scale: float | None = None, qkv_bias: bool = False,
                 o_bias: bool = False, qk_norm_eps: float | None = None, norm_offset: float = 0.0,
                 sliding_window: int | None = None, soft_cap: float | None = None):
        """``qk_norm_eps`` adds the per-head q/k norms (Qwen3, Gemma 3); ``scale``
        defaults to head_dim ** -0.5; ``sliding_window`` and ``soft_cap`` are this
        layer's (Gemma alternates windowed and global layers)."""
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = heads, kv_heads, head_dim
        q_size, kv_size = heads * head_dim, kv_heads * head_dim
        common = dict(dtype=ctx.dtype, device=ctx.device, quant_method=ctx.quantization)
        self.qkv_proj = MergedLinear(hidden, [q_size, kv_size, kv_size], bias=qkv_bias, **common)
        self.o_proj = Linear(q_size, hidden, bias=o_bias, **common)
        self.q_norm = self.k_norm = None
        if qk_norm_eps is not None:
            self.q_norm, self.k_norm = (RMSNorm(head_dim, qk_norm_eps, offset=norm_offset, dtype=ctx.dtype,
                                                device=ctx.device) for _ in range(2))
        self.rotary = rotary
        self.attn = Attention(heads, head_dim, head_dim ** -0.5 if scale is None else scale, kv_heads, ctx,
                              sliding_window=sliding_window, logits_soft_cap=soft_cap)

    def forward(self, positions: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_proj.split(self.qkv_proj(hidden))
        if self.q_norm is not None:
            tokens = q.shape[0]
            # contiguous, so the norm takes the fused CPU kernel (as the fused decoder does)
            q = self.q_norm(q.reshape(tokens, -1, self.head_dim).contiguous()).reshape(tokens, -1)
            k = self.k_norm(k.reshape(tokens, -1, self.head_dim).contiguous()).reshape(tokens, -1)
        q, k = self.rotary(positions, q, k)
        return self.o_proj(self.attn(q, k, v))


def config_self_attention(config, ctx: ModelContext, **options) -> SelfAttention:
    """Rotary self-attention shaped by a Hugging Face config (heads, KV heads, head size,
    RoPE and its scaling); ``options`` are SelfAttention's (biases, q/k norms, window)."""
    heads, hidden = config.num_attention_heads, config.hidden_size
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return SelfAttention(hidden, heads, getattr(config, "num_key_value_heads", None) or heads, head_dim, ctx,
                         rotary=RotaryEmbedding.for_config(config, head_dim, ctx), **options)

