"""The Llama family: Llama (and SmolLM2), Mistral, Qwen2 (q/k/v bias) and Qwen3 (per-head
q/k RMSNorm). One decoder with three switches, so the four stay in step."""

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


class LlamaForCausalLM(CausalLM):
    tested_with = (("SmolLM2-135M-Instruct, Q4_1 GGUF", "tests/e2e/test_smollm2.py"),
                   ("tiny random, against transformers", "tests/core/engine/test_parity.py"))
    # None: from config.attention_bias
    qkv_bias: bool | None = None
    o_bias: bool | None = None
    qk_norm = False

    def __init__(self, config: Any, context: ModelContext):
        ctx, hidden, eps = context, config.hidden_size, config.rms_norm_eps
        norm = dict(dtype=ctx.dtype, device=ctx.device)
        layers = [DecoderLayer(RMSNorm(hidden, eps, **norm), self.attention(config, ctx), RMSNorm(hidden, eps, **norm),
                               GatedMLP(hidden, config.intermediate_size, ctx,
                                        activation=getattr(config, "hidden_act", "silu"),
                                        bias=bool(getattr(config, "mlp_bias", False))))
                  for _ in range(config.num_hidden_layers)]
        embedding = VocabEmbedding(config.vocab_size, hidden, quant_method=ctx.quantization, **norm)
        model = DecoderModel(embedding, layers, RMSNorm(hidden, eps, **norm))
        super().__init__(config, model, context)

    def attention(self, config: Any, ctx: ModelContext) -> SelfAttention:
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        bias = bool(getattr(config, "attention_bias", False))
        return SelfAttention(
            config.hidden_size, heads, getattr(config, "num_key_value_heads", None) or heads, head_dim, ctx,
            rotary=RotaryEmbedding.for_config(config, head_dim, ctx),
            qkv_bias=bias if self.qkv_bias is None else self.qkv_bias,
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
