"""Rotary position embeddings (neox layout: the two halves of each head rotate together),
with the scalings fw supports: default, linear, dynamic (NTK) and llama3.

cos/sin are precomputed for every position up to ``max_position`` once, in float32, so a
step only gathers rows by position.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

SUPPORTED_SCALINGS = ("default", "linear", "dynamic", "llama3")


def rope_parameters(config: Any) -> tuple[float, dict[str, Any]]:
    """(theta, scaling dict) from a Hugging Face config, old or new style."""
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and params:
        scaling = dict(params)
        theta = float(scaling.pop("rope_theta", getattr(config, "rope_theta", 10000.0)))
        return theta, scaling
    scaling = dict(getattr(config, "rope_scaling", None) or {})
    return float(getattr(config, "rope_theta", 10000.0)), scaling


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


def _cos_sin(inv_freq: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    freqs = torch.outer(positions.float(), inv_freq)
    return torch.cat([freqs.cos(), freqs.sin()], dim=-1)  # [P, rotary_dim]


class RotaryEmbedding(nn.Module):
    def __init__(self, head_size: int, rotary_dim: int, max_position: int, base: float,
                 scaling: dict[str, Any] | None = None, *, original_max_position: int | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        scaling = dict(scaling or {})
        kind = scaling.get("rope_type", scaling.get("type", "default"))
        if kind not in SUPPORTED_SCALINGS:
            raise ValueError(f"unsupported rope scaling {kind!r}; supported: {', '.join(SUPPORTED_SCALINGS)}")
        self.head_size = head_size
        self.rotary_dim = rotary_dim
        self.dtype = dtype
        positions = torch.arange(max_position)
        inv_freq = _inv_freq(rotary_dim, base)
        if kind == "linear":
            cache = _cos_sin(inv_freq / float(scaling["factor"]), positions)
        elif kind == "llama3":
            cache = _cos_sin(_llama3_inv_freq(inv_freq, scaling), positions)
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
        self.register_buffer("cos_sin_cache", cache, persistent=False)

    def forward(self, positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor):
        """query [T, Hq*D] and key [T, Hk*D] rotated at ``positions`` [T]."""
        cos_sin = self.cos_sin_cache.index_select(0, positions)
        cos, sin = cos_sin.chunk(2, dim=-1)
        return self._rotate(query, cos, sin), self._rotate(key, cos, sin)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        tokens = x.shape[0]
        x = x.view(tokens, -1, self.head_size)
        rot, rest = x[..., : self.rotary_dim], x[..., self.rotary_dim:]
        x1, x2 = rot.chunk(2, dim=-1)
        cos = cos.unsqueeze(1).to(x.dtype)
        sin = sin.unsqueeze(1).to(x.dtype)
        c, s = cos[..., : x1.shape[-1]], sin[..., : x1.shape[-1]]
        rotated = torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)
        if rest.shape[-1]:
            rotated = torch.cat([rotated, rest], dim=-1)
        return rotated.reshape(tokens, -1)
