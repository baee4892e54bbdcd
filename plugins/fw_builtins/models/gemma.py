"""Gemma 2 and Gemma 3 (text).

What sets them apart from the Llama family: RMSNorms that scale by ``1 + w``, a norm on
the attention output and one on the MLP output before each residual add (four norms a
layer), GELU-tanh gating, embeddings scaled by sqrt(hidden), attention scaled by
``query_pre_attn_scalar ** -0.5``, layers that alternate between a sliding window and
global attention (``config.layer_types``). Gemma 2 soft-caps attention scores and the
final logits; Gemma 3 norms queries and keys per head instead, and gives windowed and
global layers their own RoPE base (``rope_parameters`` per layer type).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fw.errors import ConfigurationError
from fw.layers.decoder import DecoderModel
from fw.layers.embedding import VocabEmbedding
from fw.layers.mlp import GatedMLP
from fw.layers.norm import RMSNorm
from fw.layers.rotary import RotaryEmbedding
from fw.layers.self_attention import SelfAttention
from fw.models.causal_lm import CausalLM
from fw.models.description import DecoderLayerDescription
from fw.models.interface import ModelContext

#: Gemma's norms store the scale minus one
OFFSET = 1.0
TINY, PARITY = "tiny random, against transformers", "tests/plugins/models/test_transformers_parity.py"


def _norm(size: int, config: Any, ctx: ModelContext) -> RMSNorm:
    return RMSNorm(size, config.rms_norm_eps, offset=OFFSET, dtype=ctx.dtype, device=ctx.device)


class GemmaDecoderLayer(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext, layer_type: str, *, qk_norm: bool):
        super().__init__()
        hidden, heads = config.hidden_size, config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        windowed = layer_type == "sliding_attention"
        rotary = RotaryEmbedding.for_config(config, head_dim, ctx, layer_type=layer_type)
        self.self_attn = SelfAttention(
            hidden, heads, config.num_key_value_heads, head_dim, ctx, rotary=rotary,
            scale=config.query_pre_attn_scalar ** -0.5, qkv_bias=bool(config.attention_bias),
            o_bias=bool(config.attention_bias), qk_norm_eps=config.rms_norm_eps if qk_norm else None,
            norm_offset=OFFSET, sliding_window=config.sliding_window if windowed else None,
            soft_cap=getattr(config, "attn_logit_softcapping", None),
        )
        activation = getattr(config, "hidden_activation", None) or config.hidden_act
        self.mlp = GatedMLP(hidden, config.intermediate_size, ctx, activation=activation)
        self.input_layernorm = _norm(hidden, config, ctx)
        self.post_attention_layernorm = _norm(hidden, config, ctx)
        self.pre_feedforward_layernorm = _norm(hidden, config, ctx)
        self.post_feedforward_layernorm = _norm(hidden, config, ctx)

    def forward(self, positions, hidden, residual):
        if residual is None:
            residual, hidden = hidden, self.input_layernorm(hidden)
        else:
            hidden, residual = self.input_layernorm(hidden, residual)
        hidden = self.post_attention_layernorm(self.self_attn(positions, hidden))
        hidden, residual = self.pre_feedforward_layernorm(hidden, residual)
        return self.post_feedforward_layernorm(self.mlp(hidden)), residual

    def describe(self) -> DecoderLayerDescription:
        attention, mlp = self.self_attn, self.mlp
        return DecoderLayerDescription(
            input_norm=self.input_layernorm, post_attention_norm=self.pre_feedforward_layernorm,
            qkv=attention.qkv_proj, o=attention.o_proj, gate_up=mlp.gate_up_proj, down=mlp.down_proj,
            attention=attention.attn, rotary=attention.rotary, activation=mlp.act_name,
            q_norm=attention.q_norm, k_norm=attention.k_norm,
            attention_output_norm=self.post_attention_layernorm, mlp_output_norm=self.post_feedforward_layernorm,
        )


class Gemma2ForCausalLM(CausalLM):
    tested_with = ((TINY, PARITY), ("tiny random GGUF", "tests/plugins/loaders/test_gguf_loader.py"))
    qk_norm = False

    def __init__(self, config: Any, context: ModelContext):
        if getattr(config, "use_bidirectional_attention", False):
            raise ConfigurationError(f"{type(self).__name__} with use_bidirectional_attention (an embedding "
                                     "model) is not a causal LM; fw serves the causal Gemma models")
        ctx, hidden = context, config.hidden_size
        embedding = VocabEmbedding(config.vocab_size, hidden, scale=hidden ** 0.5, dtype=ctx.dtype, device=ctx.device,
                                   quant_method=ctx.quantization)
        layers = [GemmaDecoderLayer(config, ctx, layer_type, qk_norm=self.qk_norm)
                  for layer_type in config.layer_types[:config.num_hidden_layers]]
        super().__init__(config, DecoderModel(embedding, layers, _norm(hidden, config, ctx)), context)
        #: Gemma 2's final logits are soft-capped: cap * tanh(logits / cap)
        self.final_soft_cap = getattr(config, "final_logit_softcapping", None)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(hidden)
        if self.final_soft_cap is not None:
            logits = torch.tanh(logits / self.final_soft_cap) * self.final_soft_cap
        return logits


class Gemma3ForCausalLM(Gemma2ForCausalLM):
    tested_with = (("Gemma 3 270M, Q4_K_M GGUF", "tests/e2e/test_gemma3.py"), *Gemma2ForCausalLM.tested_with)
    qk_norm = True
