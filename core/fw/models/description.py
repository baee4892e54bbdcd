"""How a model describes its decoder stack to fw, so fw can run it in other ways than the
model's own ``forward``.

A model plugin whose architecture is a pre-norm decoder (norm, attention, residual, norm,
gated MLP or mixture of experts, residual; a final norm) returns a
``DecoderDescription`` from an optional ``describe_decoder()`` method. It names modules
the model already holds, built from ``fw.layers``; it copies nothing. From it the runner
builds the fused CPU decode step (``fw.engine.fused_decode``: every layer of a decode
step in one C call), and a model gets that fast path by describing itself, not by
writing code for it.

What varies between architectures is in the modules and the optional fields, whose
defaults keep the Llama meaning: each norm's ``offset`` (Gemma's norms scale by 1 + w),
the embedding's ``scale`` (Gemma's sqrt(hidden)), each attention layer's window, scale
and soft cap and each layer's rotary table (Gemma 2/3 alternate windowed and global
layers with their own RoPE bases), norms of the attention and MLP outputs before their
residual adds (Gemma 2/3), the gating activation, and routed experts in place of the MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

from fw.layers.attention import Attention
from fw.layers.embedding import VocabEmbedding
from fw.layers.linear import Linear, MergedLinear
from fw.layers.moe import MixtureOfExperts
from fw.layers.norm import RMSNorm
from fw.layers.rotary import RotaryEmbedding


@dataclass
class DecoderLayerDescription:
    """One decoder layer: ``h += o(attn(rope(qkv(norm(h)))))`` then
    ``h += down(act(gate_up(post_norm(h))))`` (or ``h += moe(post_norm(h))``)."""

    #: the norm before attention (its residual add fused in)
    input_norm: RMSNorm
    #: the norm before the MLP
    post_attention_norm: RMSNorm
    #: q, k and v as one projection, in that order
    qkv: MergedLinear
    o: Linear
    #: gate and up as one projection, in that order (None with ``moe``)
    gate_up: MergedLinear | None
    down: Linear | None
    #: the attention layer (its backend, KV cache, heads, scale, window and soft cap)
    attention: Attention
    #: rotary embedding of queries and keys (the neox layout), this layer's
    rotary: RotaryEmbedding
    #: the gating activation between gate_up and down: ``act(gate) * up`` (a hidden_act name)
    activation: str = "silu"
    #: per-head RMSNorm of queries and keys before the rotary embedding (Qwen3, Gemma 3)
    q_norm: RMSNorm | None = None
    k_norm: RMSNorm | None = None
    #: the norm of the attention output before its residual add (Gemma 2/3's post_attention_layernorm)
    attention_output_norm: RMSNorm | None = None
    #: the norm of the MLP output before its residual add (Gemma 2/3's post_feedforward_layernorm)
    mlp_output_norm: RMSNorm | None = None
    #: routed experts in place of gate_up/down (Mixtral, Qwen2-MoE, Qwen3-MoE)
    moe: MixtureOfExperts | None = None


@dataclass
class DecoderDescription:
    """The whole stack: embedding lookup (with its scale), the layers in order, the final norm."""

    embedding: VocabEmbedding
    layers: list[DecoderLayerDescription]
    final_norm: RMSNorm
