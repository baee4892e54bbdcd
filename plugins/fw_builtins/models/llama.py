"""The Llama family: Llama (and SmolLM2), Mistral, Qwen2 (q/k/v bias) and Qwen3 (per-head
q/k RMSNorm). One decoder with three switches, so the four stay in step."""

from __future__ import annotations

from typing import Any

from fw.layers.decoder import rms_norm_decoder
from fw.layers.mlp import GatedMLP
from fw.layers.self_attention import SelfAttention, config_self_attention
from fw.models.causal_lm import CausalLM
from fw.models.interface import ModelContext


class LlamaForCausalLM(CausalLM):
    tested_with = (("SmolLM2-135M-Instruct, Q4_1 GGUF", "tests/e2e/test_smollm2.py"),
                   ("tiny random, against transformers", "tests/core/engine/test_parity.py"))
    # None: from config.attention_bias
    qkv_bias: bool | None = None
    o_bias: bool | None = None
    qk_norm = False

    def __init__(self, config: Any, context: ModelContext):
        def mlp(index: int) -> GatedMLP:
            return GatedMLP(config.hidden_size, config.intermediate_size, context,
                            activation=getattr(config, "hidden_act", "silu"),
                            bias=bool(getattr(config, "mlp_bias", False)))

        model = rms_norm_decoder(config, context, lambda index: self.attention(config, context), mlp)
        super().__init__(config, model, context)

    def attention(self, config: Any, ctx: ModelContext) -> SelfAttention:
        bias = bool(getattr(config, "attention_bias", False))
        return config_self_attention(
            config, ctx, qkv_bias=bias if self.qkv_bias is None else self.qkv_bias,
            o_bias=bias if self.o_bias is None else self.o_bias,
            qk_norm_eps=config.rms_norm_eps if self.qk_norm else None, sliding_window=self.sliding_window(config),
        )

    @staticmethod
    def sliding_window(config: Any) -> int | None:
        return None


class MistralForCausalLM(LlamaForCausalLM):
    tested_with = (("tiny random, against transformers", "tests/core/engine/test_parity.py"),)
    @staticmethod
    def sliding_window(config: Any) -> int | None:
        return getattr(config, "sliding_window", None)


class Qwen2ForCausalLM(LlamaForCausalLM):
    tested_with = (("tiny random, against transformers", "tests/core/engine/test_parity.py"),)
    qkv_bias = True
    o_bias = False

    @staticmethod
    def sliding_window(config: Any) -> int | None:
        return getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", False) else None


class Qwen3ForCausalLM(Qwen2ForCausalLM):
    qkv_bias = None
    o_bias = None
    qk_norm = True
