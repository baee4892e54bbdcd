"""Rotary tables against transformers' rotary embeddings: LongRoPE (Phi-3: its short
factors inside the trained context, its long factors beyond, the attention factor on
both, a partial rotary share) and Gemma 3's RoPE base per kind of layer."""

from __future__ import annotations

import pytest
import torch
import transformers

from fw.layers.rotary import RotaryEmbedding
from fw.models.interface import ModelContext

CTX = ModelContext(dtype=torch.float32, device=torch.device("cpu"), attention_backend=None,
                   extra={"max_model_len": 1024})


def table(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' [positions, rotary_dim] cos and sin (halves repeated) as fw's table."""
    half = cos.shape[-1] // 2
    return torch.cat([cos[0, :, :half], sin[0, :, :half]], dim=-1)


def phi3_config(**scaling):
    return transformers.Phi3Config(
        vocab_size=64, hidden_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, pad_token_id=0, max_position_embeddings=1024, original_max_position_embeddings=256,
        partial_rotary_factor=0.75, rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.3 * i for i in range(6)],
                                                  "long_factor": [3.0 + i for i in range(6)], **scaling})


@pytest.mark.parametrize("scaling", [{}, {"attention_factor": 1.5}])
def test_longrope_matches_transformers_inside_and_beyond_the_trained_context(scaling):
    config = phi3_config(**scaling)
    ours = RotaryEmbedding.for_config(config, 16, CTX)
    assert ours.rotary_dim == 12
    reference = transformers.models.phi3.modeling_phi3.Phi3RotaryEmbedding(config)
    x = torch.zeros(1)
    short = torch.arange(256)[None]
    torch.testing.assert_close(ours.cos_sin_cache[:256], table(*reference(x, short)), rtol=1e-6, atol=1e-6)
    # a sequence longer than the trained context: transformers switches to the long factors
    long = torch.arange(1024)[None]
    expected = table(*reference(x, long))
    torch.testing.assert_close(ours.cos_sin_cache[256:], expected[256:], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(ours.cos_sin_cache[:256], expected[:256])  # fw keeps each position's own


def test_gemma3_windowed_and_global_layers_have_their_own_base():
    config = transformers.Gemma3TextConfig(
        vocab_size=64, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, intermediate_size=64, layer_types=["sliding_attention", "full_attention"],
        rope_scaling={"rope_type": "linear", "factor": 8.0})
    reference = transformers.models.gemma3.modeling_gemma3.Gemma3RotaryEmbedding(config)
    positions = torch.arange(1024)[None]
    tables = {}
    for kind in ("sliding_attention", "full_attention"):
        tables[kind] = RotaryEmbedding.for_config(config, 16, CTX, layer_type=kind).cos_sin_cache
        torch.testing.assert_close(tables[kind], table(*reference(torch.zeros(1), positions, kind)),
                                   rtol=1e-6, atol=1e-6)
    assert not torch.allclose(tables["sliding_attention"], tables["full_attention"])
