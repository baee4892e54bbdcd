"""Rotary position embeddings (neox layout: the two halves of each head rotate together),
with the scalings fw supports: default, linear, dynamic (NTK), llama3 and LongRoPE (Phi-3).

cos/sin are precomputed for every position up to ``max_position`` once, in float32, so a
step only gathers rows by position.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import torch
from torch import nn

from fw_kernels import cpu

SUPPORTED_SCALINGS = ("default", "linear", "dynamic", "llama3", "longrope", "su")


def rope_parameters(config: Any, layer_type: str | None = None) -> tuple[float, dict[str, Any]]:
    """(theta, scaling dict) from a Hugging Face config, old or new style; with
    ``layer_type``, those of that kind of layer where the config has one set per kind
    (Gemma 3: ``sliding_attention`` and ``full_attention``)."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and layer_type is not None and isinstance(params.get(layer_type), dict):
        params = params[layer_type]
    if isinstance(params, dict) and params:
        scaling = dict(params)
        theta = float(scaling.pop("rope_theta", getattr(config, "rope_theta", 10000.0)))
        return theta, scaling
    scaling = dict(getattr(config, "rope_scaling", None) or {})
    return float(getattr(config, "rope_theta", 10000.0)), scaling


def partial_rotary_factor(config: Any) -> float:
    """The share of each head that rotates (Phi-4-mini: 0.75), wherever the config keeps it."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and "partial_rotary_factor" in params:
        return float(params["partial_rotary_factor"])
    return float(getattr(config, "partial_rotary_factor", None) or 1.0)


def _inv_freq(dim: int, base: float) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def _llama3_inv_freq(inv_freq: torch.Tensor, scaling: dict[str, Any]) -> torch.Tensor:
    factor = float(scaling["factor"])
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    old_context = float(scaling.get("original_max_position_embeddings", 8192))
    wavelen = 2 * math.pi / inv_freq
    low_wavelen, high_wavelen = old_context / low, old_context / high
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    between = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(between, smoothed, scaled)


def _longrope(dim: int, base: float, scaling: dict[str, Any], positions: torch.Tensor,
              extended: int) -> torch.Tensor:
    """LongRoPE (Phi-3's ``longrope``/``su``): per-frequency factors, ``short_factor``
    inside the trained context and ``long_factor`` beyond it, and cos/sin scaled by the
    attention factor. transformers switches every position of a sequence to the long
    factors once the sequence outgrows the trained context; here each position keeps its
    own, fixed, so cached keys and new queries always agree (positions inside the trained
    context match transformers exactly)."""
    trained = int(scaling.get("original_max_position_embeddings") or extended)
    factor = float(scaling.get("factor") or extended / trained)
    attention = scaling.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(trained))
    exponent = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim

    def table(factors) -> torch.Tensor:
        return _cos_sin(1.0 / (torch.tensor(factors, dtype=torch.float32) * base ** exponent), positions)

    short = table(scaling["short_factor"])
    cache = short if positions.numel() <= trained else torch.where(
        (positions < trained)[:, None], short, table(scaling["long_factor"]))
    return cache * float(attention)


def _cos_sin(inv_freq: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    freqs = torch.outer(positions.float(), inv_freq)
    return torch.cat([freqs.cos(), freqs.sin()], dim=-1)  # [P, rotary_dim]


@functools.lru_cache(maxsize=16)
def _shared_cache(rotary_dim: int, max_position: int, base: float, scaling_key: str,
                  original_max_position: int | None, device: str) -> torch.Tensor:
    """cos/sin for every position, built once per distinct setting: every layer of a
    model shares one table (and one per-step lookup)."""
    scaling = json.loads(scaling_key)
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    positions = torch.arange(max_position)
    inv_freq = _inv_freq(rotary_dim, base)
    if kind == "linear":
        cache = _cos_sin(inv_freq / float(scaling["factor"]), positions)
    elif kind == "llama3":
        cache = _cos_sin(_llama3_inv_freq(inv_freq, scaling), positions)
    elif kind in ("longrope", "su"):
        cache = _longrope(rotary_dim, base, scaling, positions, int(original_max_position or max_position))
    elif kind == "dynamic":
        # Unscaled inside the trained context (as transformers computes it there);
        # beyond it, NTK-scaled for the whole served context, fixed so that cached
        # keys and new queries always agree.
        factor = float(scaling["factor"])
        trained = int(original_max_position or max_position)
        served = max(max_position, trained)
        ntk_base = base * ((factor * served / trained) - (factor - 1)) ** (rotary_dim / (rotary_dim - 2))
        cache = torch.where((positions < trained)[:, None], _cos_sin(inv_freq, positions),
                            _cos_sin(_inv_freq(rotary_dim, ntk_base), positions))
    else:
        cache = _cos_sin(inv_freq, positions)
    return cache.to(device)


class RotaryEmbedding(nn.Module):
    def __init__(self, head_size: int, rotary_dim: int, max_position: int, base: float,
                 scaling: dict[str, Any] | None = None, *, original_max_position: int | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        super().__init__()
        scaling = dict(scaling or {})
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        if kind not in SUPPORTED_SCALINGS:
            raise ValueError(f"unsupported rope scaling {kind!r}; supported: {', '.join(SUPPORTED_SCALINGS)}")
        self.head_size = head_size
        self.rotary_dim = rotary_dim
        self.dtype = dtype
        self.cos_sin_cache = _shared_cache(rotary_dim, max_position, float(base),
                                           json.dumps(scaling, sort_keys=True, default=str),
                                           original_max_position, str(torch.device(device)))

    @classmethod
    def for_config(cls, config: Any, head_size: int, ctx, *, layer_type: str | None = None) -> "RotaryEmbedding":
        """The rotary embedding a Hugging Face config describes (its theta, scaling and
        rotating share of each head; ``layer_type`` for configs with one set per kind of
        layer), for the engine's context length (``ctx``: the model's ``ModelContext``)."""
        theta, scaling = rope_parameters(config, layer_type)
        return cls(head_size, int(head_size * partial_rotary_factor(config)), ctx.extra["max_model_len"], theta,
                   scaling, original_max_position=getattr(config, "max_position_embeddings", None),
                   dtype=ctx.dtype, device=ctx.device)

    def _cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin at ``positions``, [T, 1, rotary_dim / 2]; computed once per step and
        shared by every layer (they all get the same positions tensor)."""
        key = (id(self.cos_sin_cache), dtype)
        memo = _STEP_MEMO.get(key)
        if memo is not None and memo[0] is positions:  # positions are never changed in place
            return memo[1], memo[2]
        cos, sin = self.cos_sin_cache.index_select(0, positions).to(dtype).unsqueeze(1).chunk(2, dim=-1)
        _STEP_MEMO[key] = (positions, cos, sin)
        return cos, sin

    def forward(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor):
        """query [T, Hq*D] and key [T, Hk*D] rotated at ``positions`` [T], together. On the
        CPU kernels they are rotated in place (they are fresh projection outputs)."""
        if self._rotate_in_place(positions, query, key):
            return query, key
        tokens, size = query.shape[0], self.head_size
        cos, sin = self._cos_sin(positions, query.dtype)
        q_heads = query.shape[1] // size
        both = torch.cat([query.view(tokens, -1, size), key.view(tokens, -1, size)], dim=1)
        x1, x2 = both[..., : self.rotary_dim].chunk(2, dim=-1)
        rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
        if self.rotary_dim < size:
            rotated = torch.cat([rotated, both[..., self.rotary_dim:]], dim=-1)
        return rotated[:, :q_heads].reshape(tokens, -1), rotated[:, q_heads:].reshape(tokens, -1)

    def _rotate_in_place(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor) -> bool:
        if not (cpu.supports(query, key) and positions.dtype == torch.int64 and positions.is_contiguous()
                and query.stride(1) == 1 and key.stride(1) == 1 and self.cos_sin_cache.dtype == torch.float32):
            return False
        size, q_heads = self.head_size, query.shape[1] // self.head_size
        rotate = functools.partial(cpu.rope_neox_, positions=positions, cos_sin=self.cos_sin_cache,
                                   head_size=size, rotary_dim=self.rotary_dim)
        adjacent = (key.stride(0) == query.stride(0)
                    and key.data_ptr() == query.data_ptr() + query.shape[1] * query.element_size())
        if adjacent:  # q and k are neighbouring columns of one qkv projection: one call
            rotate(query, heads=q_heads + key.shape[1] // size)
        else:
            rotate(query, heads=q_heads)
            rotate(key, heads=key.shape[1] // size)
        return True


#: (cache id, dtype) -> (positions tensor, cos, sin) of the latest step
_STEP_MEMO: dict[tuple[int, torch.dtype], tuple] = {}
