"""The pre-norm decoder most architectures share (Llama, Mistral, Qwen, Phi-3, Mixtral,
Qwen-MoE): norm, self-attention, residual add, norm, MLP or mixture of experts, residual
add; a final norm. Each residual add is fused into the norm after it. Model plugins build
their layers from these parts and describe them to the fused CPU decode with
``describe()``; an architecture with another layer shape (Gemma's four norms) writes its
own layer and description."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from fw.layers.embedding import VocabEmbedding
from fw.layers.mlp import GatedMLP
from fw.layers.moe import MixtureOfExperts
from fw.layers.norm import RMSNorm
from fw.layers.self_attention import SelfAttention
from fw.models.description import DecoderDescription, DecoderLayerDescription
from fw.models.interface import ModelContext


class DecoderLayer(nn.Module):
    def __init__(self, input_layernorm: RMSNorm, self_attn: SelfAttention, post_attention_layernorm: RMSNorm,
                 mlp: GatedMLP | MixtureOfExperts):
        super().__init__()
        self.input_layernorm = input_layernorm
        self.self_attn = self_attn
        self.post_attention_layernorm = post_attention_layernorm
        self.mlp = mlp

    def forward(self, positions: torch.Tensor, hidden: torch.Tensor, residual: torch.Tensor | None):
        if residual is None:
            residual, hidden = hidden, self.input_layernorm(hidden)
        else:
            hidden, residual = self.input_layernorm(hidden, residual)
        hidden = self.self_attn(positions, hidden)
        hidden, residual = self.post_attention_layernorm(hidden, residual)
        return self.mlp(hidden), residual

    def describe(self) -> DecoderLayerDescription:
        attention, mlp = self.self_attn, self.mlp
        moe = isinstance(mlp, MixtureOfExperts)
        return DecoderLayerDescription(
            input_norm=self.input_layernorm, post_attention_norm=self.post_attention_layernorm,
            qkv=attention.qkv_proj, o=attention.o_proj, gate_up=None if moe else mlp.gate_up_proj,
            down=None if moe else mlp.down_proj, attention=attention.attn, rotary=attention.rotary,
            activation=(mlp.experts[0] if moe else mlp).act_name, q_norm=attention.q_norm, k_norm=attention.k_norm,
            moe=mlp if moe else None,
        )


class DecoderModel(nn.Module):
    def __init__(self, embed_tokens: VocabEmbedding, layers: list[nn.Module], norm: RMSNorm):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.layers = nn.ModuleList(layers)
        self.norm = norm

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.embed_tokens(input_ids), None
        for layer in self.layers:
            hidden, residual = layer(positions, hidden, residual)
        hidden, _ = self.norm(hidden, residual)
        return hidden

    def describe(self) -> DecoderDescription:
        """The stack for fw's fused decode step (its layers each ``describe()`` themselves)."""
        return DecoderDescription(embedding=self.embed_tokens, final_norm=self.norm,
                                  layers=[layer.describe() for layer in self.layers])


def rms_norm_decoder(config: Any, ctx: ModelContext, attention: Callable[[int], nn.Module],
                     mlp: Callable[[int], nn.Module]) -> DecoderModel:
    """The decoder of this module's shape from a Hugging Face config: per layer an RMSNorm,
    ``attention(index)``, an RMSNorm and ``mlp(index)``; the vocabulary embedding before
    them and a final RMSNorm (``config.rms_norm_eps`` throughout)."""
    hidden, eps = config.hidden_size, config.rms_norm_eps
    plain = dict(dtype=ctx.dtype, device=ctx.device)
    layers = [DecoderLayer(RMSNorm(hidden, eps, **plain), attention(index), RMSNorm(hidden, eps, **plain), mlp(index))
              for index in range(config.num_hidden_layers)]
    embedding = VocabEmbedding(config.vocab_size, hidden, quant_method=ctx.quantization, **plain)
    return DecoderModel(embedding, layers, RMSNorm(hidden, eps, **plain))

