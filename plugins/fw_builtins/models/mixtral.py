"""Mixtral (``MixtralForCausalLM``): Mistral's attention with a mixture of experts in
place of every MLP, each token routed to its top ``num_experts_per_tok`` of
``num_local_experts`` SiLU-gated experts with their softmax weights renormalised to sum
to one (``fw.layers.moe``). Checkpoints name the MoE block ``block_sparse_moe`` and an
expert's gate, down and up projections ``w1``, ``w2`` and ``w3``."""

from __future__ import annotations

from typing import Any

from fw.layers.decoder import rms_norm_decoder
from fw.layers.moe import MixtureOfExperts
from fw.layers.self_attention import SelfAttention, config_self_attention
from fw.models.causal_lm import CausalLM
from fw.models.interface import ModelContext
from fw.models.loading import STACKED


class MixtralForCausalLM(CausalLM):
    tested_with = (("tiny random, against transformers", "tests/plugins/models/test_transformers_parity.py"),)
    stacked = {**STACKED, "w1": ("gate_up_proj", 0), "w3": ("gate_up_proj", 1)}
    renames = (("block_sparse_moe.", "mlp."), (".w2.", ".down_proj."))

    def __init__(self, config: Any, context: ModelContext):
        def attention(index: int) -> SelfAttention:
            return config_self_attention(config, context, sliding_window=getattr(config, "sliding_window", None))

        def moe(index: int) -> MixtureOfExperts:
            return MixtureOfExperts(config.hidden_size, config.intermediate_size, config.num_local_experts,
                                    config.num_experts_per_tok, context, renormalize=True,
                                    activation=config.hidden_act)

        model = rms_norm_decoder(config, context, attention, moe)
        super().__init__(config, model, context)
