"""Qwen2-MoE and Qwen3-MoE: Qwen's attention (q/k/v biases in Qwen2, per-head q/k norms in
Qwen3) with mixtures of experts (``fw.layers.moe``) in the layers
``decoder_sparse_step`` and ``mlp_only_layers`` pick, dense MLPs in the others. Their
softmax weights are renormalised over the chosen experts only with ``norm_topk_prob``.
Qwen2-MoE adds a shared expert to every token, scaled by a sigmoid gate."""

from __future__ import annotations

from typing import Any

from torch import nn

from fw.layers.decoder import DecoderLayer, DecoderModel
from fw.layers.embedding import VocabEmbedding
from fw.layers.mlp import GatedMLP
from fw.layers.moe import MixtureOfExperts
from fw.layers.norm import RMSNorm
from fw.layers.rotary import RotaryEmbedding
from fw.layers.self_attention import SelfAttention
from fw.models.causal_lm import CausalLM
from fw.models.interface import ModelContext


class Qwen3MoeForCausalLM(CausalLM):
    tested_with = (("tiny random, against transformers", "tests/plugins/models/test_transformers_parity.py"),)
    qk_norm = True
    shared_expert = False

    def __init__(self, config: Any, context: ModelContext):
        ctx, hidden, eps = context, config.hidden_size, config.rms_norm_eps
        plain = dict(dtype=ctx.dtype, device=ctx.device)
        layers = [DecoderLayer(RMSNorm(hidden, eps, **plain), self.attention(config, ctx, index),
                               RMSNorm(hidden, eps, **plain), self.mlp(config, ctx, index))
                  for index in range(config.num_hidden_layers)]
        embedding = VocabEmbedding(config.vocab_size, hidden, quant_method=ctx.quantization, **plain)
        super().__init__(config, DecoderModel(embedding, layers, RMSNorm(hidden, eps, **plain)), context)

    def attention(self, config: Any, ctx: ModelContext, index: int) -> SelfAttention:
        heads, hidden = config.num_attention_heads, config.hidden_size
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        qkv_bias, o_bias = self.biases(config)
        return SelfAttention(
            hidden, heads, config.num_key_value_heads, head_dim, ctx,
            rotary=RotaryEmbedding.for_config(config, head_dim, ctx), qkv_bias=qkv_bias, o_bias=o_bias,
            qk_norm_eps=config.rms_norm_eps if self.qk_norm else None,
            sliding_window=self.sliding_window(config, index),
        )

    @staticmethod
    def biases(config: Any) -> tuple[bool, bool]:
        """(q/k/v bias, output bias)"""
        bias = bool(getattr(config, "attention_bias", False))
        return bias, bias

    @staticmethod
    def sliding_window(config: Any, index: int) -> int | None:
        return getattr(config, "sliding_window", None) or None

    def mlp(self, config: Any, ctx: ModelContext, index: int) -> nn.Module:
        act = config.hidden_act
        sparse = (index not in (getattr(config, "mlp_only_layers", None) or []) and config.num_experts > 0
                  and (index + 1) % config.decoder_sparse_step == 0)
        if not sparse:
            return GatedMLP(config.hidden_size, config.intermediate_size, ctx, activation=act)
        shared = config.shared_expert_intermediate_size if self.shared_expert else 0
        return MixtureOfExperts(config.hidden_size, config.moe_intermediate_size, config.num_experts,
                                config.num_experts_per_tok, ctx, renormalize=bool(config.norm_topk_prob),
                                activation=act, shared_intermediate=shared, shared_gate=bool(shared))


class Qwen2MoeForCausalLM(Qwen3MoeForCausalLM):
    qk_norm = False
    shared_expert = True

    @staticmethod
    def biases(config: Any) -> tuple[bool, bool]:
        return bool(getattr(config, "qkv_bias", True)), False

    @staticmethod
    def sliding_window(config: Any, index: int) -> int | None:
        kinds = getattr(config, "layer_types", None) or []
        windowed = index < len(kinds) and kinds[index] == "sliding_attention"
        return (getattr(config, "sliding_window", None) or None) if windowed else None
