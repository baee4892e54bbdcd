"""GPT-2 (``GPT2LMHeadModel``) built only from fw's public layer library.

What sets it apart from the Llama family, and shapes this file:

* learned absolute position embeddings (``wpe``) added to the token embeddings, instead
  of rotary embeddings inside attention;
* LayerNorm with a bias, and a bias on every projection;
* a plain (not gated) MLP with the tanh approximation of GELU (``gelu_new``);
* multi-head attention with q, k and v fused in one projection (``c_attn``), which fw
  stores as one ``MergedLinear``;
* transformers keeps the projections as ``Conv1D`` modules whose weight is ``[in, out]``,
  the transpose of a linear layer's, so ``load_weights`` transposes them.

Parameter names follow the checkpoint's (``transformer.h.0.attn.c_attn.weight``), so
loading is a lookup.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from fw.layers.activation import activation
from fw.layers.attention import Attention
from fw.layers.embedding import LMHead, VocabEmbedding
from fw.layers.linear import Linear, MergedLinear
from fw.layers.norm import LayerNorm
from fw.models.interface import ModelContext

#: modules stored as transformers' Conv1D: their checkpoint weights are transposed
_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
#: causal-mask buffers that old checkpoints (the original hub GPT-2) still carry
_MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")


def _linear_kwargs(ctx: ModelContext) -> dict[str, Any]:
    return dict(bias=True, dtype=ctx.dtype, device=ctx.device, quant_method=ctx.quantization)


class GPT2Attention(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext, layer_idx: int):
        super().__init__()
        hidden, heads = config.hidden_size, config.num_attention_heads
        head_dim = hidden // heads
        self.c_attn = MergedLinear(hidden, [hidden, hidden, hidden], **_linear_kwargs(ctx))
        self.c_proj = Linear(hidden, hidden, **_linear_kwargs(ctx))
        scale = head_dim ** -0.5 if getattr(config, "scale_attn_weights", True) else 1.0
        if getattr(config, "scale_attn_by_inverse_layer_idx", False):
            scale /= layer_idx + 1
        self.attn = Attention(heads, head_dim, scale, heads, ctx)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        q, k, v = self.c_attn.split(self.c_attn(hidden))
        return self.c_proj(self.attn(q, k, v))


class GPT2MLP(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext):
        super().__init__()
        inner = getattr(config, "n_inner", None) or 4 * config.hidden_size
        self.c_fc = Linear(config.hidden_size, inner, **_linear_kwargs(ctx))
        self.c_proj = Linear(inner, config.hidden_size, **_linear_kwargs(ctx))
        self.act = activation(getattr(config, "activation_function", "gelu_new"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext, layer_idx: int):
        super().__init__()
        norm = dict(eps=config.layer_norm_epsilon, dtype=ctx.dtype, device=ctx.device)
        self.ln_1 = LayerNorm(config.hidden_size, **norm)
        self.attn = GPT2Attention(config, ctx, layer_idx)
        self.ln_2 = LayerNorm(config.hidden_size, **norm)
        self.mlp = GPT2MLP(config, ctx)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None):
        """Pre-norm residual block; the residual add is fused into the next norm."""
        if residual is None:
            residual, hidden = hidden, self.ln_1(hidden)
        else:
            hidden, residual = self.ln_1(hidden, residual)
        hidden, residual = self.ln_2(self.attn(hidden), residual)
        return self.mlp(hidden), residual


class GPT2Model(nn.Module):
    def __init__(self, config: Any, ctx: ModelContext):
        super().__init__()
        table = dict(dtype=ctx.dtype, device=ctx.device)
        self.wte = VocabEmbedding(config.vocab_size, config.hidden_size, **table)
        self.wpe = VocabEmbedding(config.max_position_embeddings, config.hidden_size, **table)
        self.h = nn.ModuleList(GPT2Block(config, ctx, i) for i in range(config.num_hidden_layers))
        self.ln_f = LayerNorm(config.hidden_size, config.layer_norm_epsilon, dtype=ctx.dtype, device=ctx.device)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.wte(input_ids) + self.wpe(positions), None
        for block in self.h:
            hidden, residual = block(hidden, residual)
        hidden, _ = self.ln_f(hidden, residual)
        return hidden


class GPT2LMHeadModel(nn.Module):
    """The ``fw.models.interface`` contract over ``GPT2Model``."""

    def __init__(self, config: Any, context: ModelContext):
        super().__init__()
        self.config = config
        self.transformer = GPT2Model(config, context)
        tied = bool(getattr(config, "tie_word_embeddings", True))
        self.lm_head = LMHead(config.vocab_size, config.hidden_size,
                              tied_to=self.transformer.wte if tied else None,
                              dtype=context.dtype, device=context.device, quant_method=context.quantization)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.transformer(input_ids, positions)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        params = dict(self.named_parameters())
        loaded: set[str] = set()
        for name, tensor in weights:
            if not name.startswith(("transformer.", "lm_head.")):
                name = "transformer." + name  # the original checkpoints have no prefix
            if name.endswith(_MASK_BUFFERS):
                continue
            if name == "lm_head.weight" and self.lm_head.tied_to is not None:
                continue
            if name not in params:
                raise KeyError(f"checkpoint tensor {name!r} has no place in {type(self).__name__}")
            if name.endswith(".weight") and any(f".{module}." in name for module in _CONV1D):
                tensor = tensor.t()
            param = params[name]
            if param.shape != tensor.shape:
                raise ValueError(f"{name}: checkpoint shape {tuple(tensor.shape)} != model shape {tuple(param.shape)}")
            param.data.copy_(tensor)
            loaded.add(name)
        return loaded
