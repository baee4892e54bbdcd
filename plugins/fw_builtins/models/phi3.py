"""Phi-3 and Phi-4-mini (``Phi3ForCausalLM``).

A Llama-shaped decoder whose checkpoints store q/k/v as one ``qkv_proj`` and gate/up as
one ``gate_up_proj``: fw keeps both merged anyway, so they load as they are (a merged
projection's shards are the rows of the checkpoint's). Its RoPE scaling is LongRoPE
(``longrope``, ``su``: per-frequency factors and an attention factor, in
``fw.layers.rotary``), Phi-4-mini rotates only part of each head
(``partial_rotary_factor``), and Phi-3-mini-4k attends through a sliding window.
"""

from __future__ import annotations

from typing import Any

from fw.layers.decoder import DecoderLayer, DecoderModel
from fw.layers.embedding import VocabEmbedding
from fw.layers.mlp import GatedMLP
from fw.layers.norm import RMSNorm
from fw.layers.rotary import RotaryEmbedding
from fw.layers.self_attention import SelfAttention
from fw.models.causal_lm import CausalLM
from fw.models.interface import ModelContext


class Phi3ForCausalLM(CausalLM):
    tested_with = (("tiny random, against transformers", "tests/plugins/models/test_transformers_parity.py"),
                   ("tiny random GGUF", "tests/plugins/loaders/test_gguf_loader.py"))
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
            mlp = GatedMLP(hidden, config.intermediate_size, ctx, activation=config.hidden_act)
            return DecoderLayer(RMSNorm(hidden, eps, **plain), attention, RMSNorm(hidden, eps, **plain), mlp)

        model = DecoderModel(VocabEmbedding(config.vocab_size, hidden, quant_method=ctx.quantization, **plain),
                             [layer() for _ in range(config.num_hidden_layers)], RMSNorm(hidden, eps, **plain))
        super().__init__(config, model, context)
