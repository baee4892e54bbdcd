"""How a model describes its decoder stack to fw, so fw can run it in other ways than the
model's own ``forward``.

A model plugin whose architecture is a pre-norm decoder (norm, attention, residual, norm,
gated MLP, residual; a final norm) returns a ``DecoderDescription`` from an optional
``describe_decoder()`` method. It names modules the model already holds, built from
``fw.layers``; it copies nothing. From it the runner builds the fused CPU decode step
(``fw.engine.fused_decode``: every layer of a decode step in one C call), and a model
gets that fast path by describing itself, not by writing code for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fw.layers.attention import Attention
from fw.layers.embedding import VocabEmbedding
from fw.layers.linear import Linear, MergedLinear
from fw.layers.norm import RMSNorm
from fw.layers.rotary import RotaryEmbedding


@dataclass
class DecoderLayerDescription:
    """One decoder layer: ``h += o(attn(rope(qkv(norm(h)))))`` then
    ``h += down(act(gate_up(post_norm(h))))``."""

    #: the norm before attention (its residual add fused in)
    input_norm: RMSNorm
    #: the norm before the MLP
    post_attention_norm: RMSNorm
    #: q, k and v as one projection, in that order
    qkv: MergedLinear
    o: Linear
    #: gate and up as one projection, in that order
    gate_up: MergedLinear
    down: Linear
    #: the attention layer (its backend, KV cache, heads, scale, window and soft cap)
    attention: Attention
    #: rotary embedding of queries and keys (the neox layout)
    rotary: RotaryEmbedding
    #: the gating activation between gate_up and down: ``act(gate) * up``
    activation: str = "silu"
    #: per-head RMSNorm of queries and keys before the rotary embedding (Qwen3)
    q_norm: RMSNorm | None = None
    k_norm: RMSNorm | None = None


@dataclass
class DecoderDescription:
    """The whole stack: embedding lookup, the layers in order, the final norm."""

    embedding: VocabEmbedding
    layers: list[DecoderLayerDescription]
    final_norm: RMSNorm
