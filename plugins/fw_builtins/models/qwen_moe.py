"""Qwen2-MoE and Qwen3-MoE: Qwen's attention (q/k/v biases in Qwen2, per-head q/k norms in
Qwen3) with mixtures of experts (``fw.layers.moe``) in the layers
``decoder_sparse_step`` and ``mlp_only_layers`` pick, dense MLPs in the others. Their
softmax weights are renormalised over the chosen experts only with ``norm_topk_prob``.
Qwen2-MoE adds a shared expert to every token, scaled by a sigmoid gate."""

from __future__ import annotations

from typing import Any

from torch import nn

from fw.layers.decoder import rms_norm_decoder
from fw.layers.mlp import GatedMLP
from fw.layers.moe import MixtureOfExperts
from fw.layers.self_attention import SelfAttention, config_self_attention
from fw.models.causal_lm import CausalLM
from fw.models.interface import ModelContext


class Qwen3MoeForCausalLM(CausalLM):
    tested_with = (("tiny random, against transformers", "tests/plugins/models/test_transformers_parity.py"),)
    qk_norm = True
    shared_expert = False

    def __init__(self, config: Any, context: ModelContext):
        model = rms_norm_decoder(config, context, lambda index: self.attention(config, context, index),
                                 lambda index: self.mlp(config, context, index))
        super().__init__(config, model, context)

    def attention(self, config: Any, ctx: ModelContext, index: int) -> SelfAttention:
        qkv_bias, o_bias = self.biases(config)
        return config_self_attention(config, ctx, qkv_bias=qkv_bias, o_bias=o_bias,
                                     qk_norm_eps=config.rms_norm_eps if self.qk_norm else None,
                                     sliding_window=self.sliding_window(config, index))

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
