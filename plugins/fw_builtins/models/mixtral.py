"""Mixtral (``MixtralForCausalLM``): Mistral's attention with a mixture of experts in
place of every MLP, each token routed to its top ``num_experts_per_tok`` of
``num_local_experts`` SiLU-gated experts with their softmax weights renormalised to sum
to one (``fw.layers.moe``). Checkpoints name the MoE block ``block_sparse_moe`` and an
expert's gate, down and up projections ``w1``, ``w2`` and ``w3``."""

from __future__ import annotations

from typing import Any

from fw.layers.decoder import DecoderLayer, DecoderModel
from fw.layers.embedding import VocabEmbedding
from fw.layers.moe import MixtureOfExperts
from fw.layers.norm import RMSNorm
from fw.layers.rotary import RotaryEmbedding
from fw.layers.self_attention import SelfAttention
from fw.models.causal_lm import CausalLM
from fw.models.interface import ModelContext
from fw.models.loading import STACKED


class MixtralForCausalLM(CausalLM):
    tested_with = (("tiny random, against transformers", "tests/plugins/models/test_transformers_parity.py"),)
    stacked = {**STACKED, "w1": ("gate_up_proj", 0), "w3": ("gate_up_proj", 1)}
    renames = (("block_sparse_moe.", "mlp."), (".w2.", ".down_proj."))

    def __init__(self, config: Any, context: ModelContext):
        ctx, hidden, eps = context, config.hidden_size, config.rms_norm_eps
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        plain = dict(dtype=ctx.dtype, device=ctx.device)

        def layer() -> DecoderLayer:
            attention = SelfAttention(hidden, heads, kv_heads, head_dim, ctx,
                                      rotary=RotaryEmbedding.for_config(config, head_dim, ctx),
                                      sliding_window=getattr(config, "sliding_window", None))
            moe = MixtureOfExperts(hidden, config.intermediate_size, config.num_local_experts,
                                   config.num_experts_per_tok, ctx, renormalize=True, activation=config.hidden_act)
            return DecoderLayer(RMSNorm(hidden, eps, **plain), attention, RMSNorm(hidden, eps, **plain), moe)

        embedding = VocabEmbedding(config.vocab_size, hidden, quant_method=ctx.quantization, **plain)
        model = DecoderModel(embedding, [layer() for _ in range(config.num_hidden_layers)],
                             RMSNorm(hidden, eps, **plain))
        super().__init__(config, model, context)
