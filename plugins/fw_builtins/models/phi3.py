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

from fw.layers.decoder import rms_norm_decoder
from fw.layers.mlp import GatedMLP
from fw.layers.self_attention import SelfAttention, config_self_attention
from fw.models.causal_lm import CausalLM
from fw.models.interface import ModelContext


class Phi3ForCausalLM(CausalLM):
    tested_with = (("tiny random, against transformers", "tests/plugins/models/test_transformers_parity.py"),
                   ("tiny random GGUF", "tests/plugins/loaders/test_gguf_loader.py"))
    def __init__(self, config: Any, context: ModelContext):
        def attention(index: int) -> SelfAttention:
            return config_self_attention(config, context, sliding_window=getattr(config, "sliding_window", None))

        def mlp(index: int) -> GatedMLP:
            return GatedMLP(config.hidden_size, config.intermediate_size, context, activation=config.hidden_act)

        model = rms_norm_decoder(config, context, attention, mlp)
        super().__init__(config, model, context)
