"""The generic layers added for non-Llama architectures, checked against torch and
transformers (the numerical reference for every model plugin)."""

from __future__ import annotations

import pytest
import torch

from fw.layers.activation import activation
from fw.layers.norm import LayerNorm


def test_layernorm_matches_torch_with_and_without_residual():
    torch.manual_seed(0)
    norm = LayerNorm(16, eps=1e-5)
    norm.weight.data.normal_()
    norm.bias.data.normal_()
    reference = torch.nn.LayerNorm(16, eps=1e-5)
    reference.load_state_dict({"weight": norm.weight.data, "bias": norm.bias.data})
    x, residual = torch.randn(5, 16), torch.randn(5, 16)
    torch.testing.assert_close(norm(x), reference(x))
    out, summed = norm(x, residual)
    torch.testing.assert_close(summed, x + residual)
    torch.testing.assert_close(out, reference(x + residual))


def test_layernorm_without_bias():
    norm = LayerNorm(8, bias=False)
    assert norm.bias is None
    x = torch.randn(3, 8)
    torch.testing.assert_close(norm(x), torch.nn.functional.layer_norm(x, (8,), eps=1e-5))


@pytest.mark.parametrize("name", ["gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu", "relu",
                                  "silu", "swish"])
def test_activations_match_transformers(name):
    from transformers.activations import ACT2FN

    x = torch.linspace(-6, 6, 1001)
    torch.testing.assert_close(activation(name)(x), ACT2FN[name](x), atol=1e-6, rtol=1e-5)


def test_unknown_activation_names_the_supported_ones():
    with pytest.raises(ValueError, match=r"unsupported activation 'mish'; supported: gelu, .*relu"):
        activation("mish")
