"""Activations: gated ones over a merged gate/up projection (Llama-style MLPs) and plain
element-wise ones (GPT-2-style MLPs), both looked up by a config's ``hidden_act`` name."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fw_kernels import cpu


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2 and x.is_contiguous() and cpu.supports(x):
        return cpu.silu_and_mul(x)  # one fused pass instead of three operations
    gate, up = x.chunk(2, dim=-1)
    return F.silu(gate) * up


def gelu_and_mul(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    if approximate == "tanh" and x.dim() == 2 and x.is_contiguous() and cpu.supports(x):
        return cpu.gelu_tanh_and_mul(x)  # the kernel the fused decoder runs (Gemma's gate)
    gate, up = x.chunk(2, dim=-1)
    return F.gelu(gate, approximate=approximate) * up


def gelu_tanh_and_mul(x: torch.Tensor) -> torch.Tensor:
    return gelu_and_mul(x, "tanh")


ACTIVATIONS = {
    "silu": silu_and_mul,
    "swish": silu_and_mul,
    "gelu": gelu_and_mul,
    "gelu_pytorch_tanh": gelu_tanh_and_mul,
    "gelu_new": gelu_tanh_and_mul,
    "gelu_fast": gelu_tanh_and_mul,
}
#: hidden_act -> the gate fw's fused CPU kernels compute for it (``fw_kernels.cpu.projection.GATES``)
FUSED_GATES = {"silu": "silu", "swish": "silu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh",
               "gelu_fast": "gelu_tanh"}


def gated_activation(name: str):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unsupported hidden_act {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}") from None


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU, which transformers names ``gelu_new`` (GPT-2),
    ``gelu_fast`` and ``gelu_pytorch_tanh``: the same function, written three ways."""
    return F.gelu(x, approximate="tanh")


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


ELEMENTWISE = {
    "gelu": F.gelu,
    "gelu_new": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "quick_gelu": quick_gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


def activation(name: str):
    """The element-wise activation a config's ``hidden_act``/``activation_function`` names."""
    try:
        return ELEMENTWISE[name]
    except KeyError:
        raise ValueError(f"unsupported activation {name!r}; supported: {', '.join(sorted(ELEMENTWISE))}") from None
