"""The Llama family: Llama (and SmolLM2), Mistral, Qwen2 (q/k/v bias) and Qwen3 (per-head
q/k RMSNorm). One decoder with three switches, so the four stay in step."""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from fw.layers.activation import gated_activation
from fw.layers.attention import Attention
from fw.layers.embedding import LMHead, VocabEmbedding
from fw.layers.linear import Linear, MergedLinear
from fw.layers.norm import RMSNorm
from fw.layers.rotary import RotaryEmbedding, rope_parameters
from fw.models.description import DecoderDescription, DecoderLayerDescription
from fw.models.interface import ModelContext


class DecoderAttention(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext, *, qkv_bias: bool, o_bias: bool, qk_norm: bool,
                 sliding_window: int | None):
        super().__init__()
        hidden = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = getattr(config, "num_key_value_heads", None) or self.num_heads
        self.head_dim = getattr(config, "head_dim", None) or hidden // self.num_heads
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        common = dict(dtype=ctx.dtype, device=ctx.device, quant_method=ctx.quantization)
        self.qkv_proj = MergedLinear(hidden, [q_size, kv_size, kv_size], bias=qkv_bias, **common)
        self.o_proj = Linear(q_size, hidden, bias=o_bias, **common)
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps, dtype=ctx.dtype, device=ctx.device) if qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps, dtype=ctx.dtype, device=ctx.device) if qk_norm else None
        theta, scaling = rope_parameters(config)
        rotary_dim = int(self.head_dim * getattr(config, "partial_rotary_factor", 1.0))
        self.rotary = RotaryEmbedding(
            self.head_dim, rotary_dim, ctx.extra["max_model_len"], theta, scaling,
            original_max_position=getattr(config, "max_position_embeddings", None), dtype=ctx.dtype,
            device=ctx.device,
        )
        self.attn = Attention(self.num_heads, self.head_dim, self.head_dim ** -0.5, self.num_kv_heads, ctx,
                              sliding_window=sliding_window)

    def forward(self, positions: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv_proj.split(self.qkv_proj(hidden))
        if self.q_norm is not None:
            tokens = q.shape[0]
            # contiguous, so the norm takes the fused CPU kernel (as the fused decoder does)
            q = self.q_norm(q.reshape(tokens, -1, self.head_dim).contiguous()).reshape(tokens, -1)
            k = self.k_norm(k.reshape(tokens, -1, self.head_dim).contiguous()).reshape(tokens, -1)
        q, k = self.rotary(positions, q, k)
        return self.o_proj(self.attn(q, k, v))


class GatedMLP(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext):
        super().__init__()
        common = dict(dtype=ctx.dtype, device=ctx.device, quant_method=ctx.quantization)
        bias = bool(getattr(config, "mlp_bias", False))
        size = config.intermediate_size
        self.gate_up_proj = MergedLinear(config.hidden_size, [size, size], bias=bias, **common)
        self.down_proj = Linear(size, config.hidden_size, bias=bias, **common)
        self.act_name = getattr(config, "hidden_act", "silu")
        self.act = gated_activation(self.act_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_up_proj(x)))


class DecoderLayer(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext, **attention_kwargs):
        super().__init__()
        eps = config.rms_norm_eps
        self.input_layernorm = RMSNorm(config.hidden_size, eps, dtype=ctx.dtype, device=ctx.device)
        self.self_attn = DecoderAttention(config, ctx, **attention_kwargs)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps, dtype=ctx.dtype, device=ctx.device)
        self.mlp = GatedMLP(config, ctx)

    def forward(self, positions, hidden, residual):
        if residual is None:
            residual, hidden = hidden, self.input_layernorm(hidden)
        else:
            hidden, residual = self.input_layernorm(hidden, residual)
        hidden = self.self_attn(positions, hidden)
        hidden, residual = self.post_attention_layernorm(hidden, residual)
        return self.mlp(hidden), residual


class DecoderModel(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext, **attention_kwargs):
        super().__init__()
        self.embed_tokens = VocabEmbedding(config.vocab_size, config.hidden_size, dtype=ctx.dtype, device=ctx.device)
        self.layers = nn.ModuleList(DecoderLayer(config, ctx, **attention_kwargs)
                                    for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype=ctx.dtype, device=ctx.device)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.embed_tokens(input_ids), None
        for layer in self.layers:
            hidden, residual = layer(positions, hidden, residual)
        hidden, _ = self.norm(hidden, residual)
        return hidden


#: checkpoint projection -> (merged module, shard index)
_STACKED = {
    "q_proj": ("qkv_proj", 0), "k_proj": ("qkv_proj", 1), "v_proj": ("qkv_proj", 2),
    "gate_proj": ("gate_up_proj", 0), "up_proj": ("gate_up_proj", 1),
}


class LlamaForCausalLM(nn.Module):
    # None: from config.attention_bias
    qkv_bias: bool | None = None
    o_bias: bool | None = None
    qk_norm = False

    def __init__(self, config: Any, context: ModelContext):
        super().__init__()
        self.config = config
        config_bias = bool(getattr(config, "attention_bias", False))
        self.model = DecoderModel(
            config, context, qk_norm=self.qk_norm, sliding_window=self.sliding_window(config),
            qkv_bias=config_bias if self.qkv_bias is None else self.qkv_bias,
            o_bias=config_bias if self.o_bias is None else self.o_bias,
        )
        tied = bool(getattr(config, "tie_word_embeddings", False))
        self.lm_head = LMHead(config.vocab_size, config.hidden_size,
                              tied_to=self.model.embed_tokens if tied else None,
                              dtype=context.dtype, device=context.device, quant_method=context.quantization)

    @staticmethod
    def sliding_window(config: Any) -> int | None:
        return None

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, positions)

    def describe_decoder(self) -> DecoderDescription | None:
        """The stack, for fw's fused decode step and tensor parallelism (``fw.models.description``)."""
        act = self.model.layers[0].mlp.act_name
        return DecoderDescription(
            embedding=self.model.embed_tokens, final_norm=self.model.norm,
            layers=[DecoderLayerDescription(
                input_norm=layer.input_layernorm, post_attention_norm=layer.post_attention_layernorm,
                qkv=layer.self_attn.qkv_proj, o=layer.self_attn.o_proj, gate_up=layer.mlp.gate_up_proj,
                down=layer.mlp.down_proj, attention=layer.self_attn.attn, rotary=layer.self_attn.rotary,
                activation="silu" if act in ("silu", "swish") else act,
                q_norm=layer.self_attn.q_norm, k_norm=layer.self_attn.k_norm,
            ) for layer in self.model.layers],
        )

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        params = dict(self.named_parameters())
        modules = dict(self.named_modules())
        loaded: set[str] = set()
        for name, tensor in weights:
            if "rotary_emb.inv_freq" in name:
                continue
            if name == "lm_head.weight" and self.lm_head.tied_to is not None:
                continue
            module_name, _, param_kind = name.rpartition(".")
            parent, _, leaf = module_name.rpartition(".")
            if leaf in _STACKED:
                merged, shard = _STACKED[leaf]
                target = f"{parent}.{merged}"
                modules[target].load_shard(params[f"{target}.{param_kind}"], tensor, shard)
                loaded.add(f"{target}.{param_kind}")
                continue
            if name not in params:
                raise KeyError(f"checkpoint tensor {name!r} has no place in {type(self).__name__}")
            param = params[name]
            if param.shape != tensor.shape:
                raise ValueError(f"{name}: checkpoint shape {tuple(tensor.shape)} != model shape {tuple(param.shape)}")
            param.data.copy_(tensor)
            loaded.add(name)
        return loaded


class MistralForCausalLM(LlamaForCausalLM):
    @staticmethod
    def sliding_window(config: Any) -> int | None:
        return getattr(config, "sliding_window", None)


class Qwen2ForCausalLM(LlamaForCausalLM):
    qkv_bias = True
    o_bias = False

    @staticmethod
    def sliding_window(config: Any) -> int | None:
        return getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", False) else None


class Qwen3ForCausalLM(Qwen2ForCausalLM):
    qkv_bias = None
    o_bias = None
    qk_norm = True
