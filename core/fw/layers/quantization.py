"""The contract of a quantization method (a ``fw_register_quantization_methods`` plugin).

A method decides, per linear layer, how weights are stored and how ``x @ W.T`` runs.
Layers call it at three moments: building (``create_weights``), after every weight is
loaded (``process_weights_after_loading``, e.g. to pack int8), and in forward
(``apply``). The unquantized method is the default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fw_kernels import cpu
from fw_kernels.cpu import packing


class QuantizationMethod:
    """Plain weights in the model dtype.

    On a CPU in bfloat16 the weights are repacked once: for fw's own bf16 GEMM
    (``fw_kernels.cpu``, on CPUs with AVX512-BF16), else for oneDNN, whose prepacked GEMM
    is 1.3-2.5x faster than torch's default path at the batch sizes serving sees.
    """

    name = "none"

    def create_weights(self, layer: nn.Module, in_features: int, out_features: int,
                       dtype: torch.dtype, device: torch.device) -> None:
        layer.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype, device=device),
                                    requires_grad=False)

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        """Called once all weights are loaded; repack here."""
        weight = layer.weight.data
        panels = pack_dense(weight)
        if panels is not None:
            layer.dense_panels = panels
        else:
            packed = pack_for_onednn(weight)
            if packed is None:
                return
            layer.packed_weight = packed
        layer.weight.data = weight.new_empty(0)  # the packed copy replaces it

    def apply(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        panels = getattr(layer, "dense_panels", None)
        if panels is not None:
            return dense_linear(x, panels, bias, layer.out_features)
        packed = getattr(layer, "packed_weight", None)
        if packed is not None:
            return onednn_linear(x, packed, bias)
        return F.linear(x, layer.weight, bias)


def pack_dense(weight: torch.Tensor) -> torch.Tensor | None:
    """``weight`` in fw's dense bf16 GEMM layout, or None where that kernel does not apply."""
    if weight.device.type != "cpu" or weight.dtype != torch.bfloat16 or weight.shape[1] % 2 or not cpu.dense_available():
        return None
    return packing.pack_bf16_panels(weight)


def dense_linear(x: torch.Tensor, panels: torch.Tensor, bias: torch.Tensor | None, out_features: int, *,
                 float_output: bool = False) -> torch.Tensor:
    rows = x.reshape(-1, x.shape[-1]).contiguous()
    out = cpu.dense_gemm(rows, panels, bias, out_features, float_output=float_output)
    return out.view(*x.shape[:-1], out_features)


def pack_for_onednn(weight: torch.Tensor) -> torch.Tensor | None:
    """``weight`` prepacked for oneDNN's bf16 linear, or None where that does not apply."""
    if weight.device.type != "cpu" or weight.dtype != torch.bfloat16 or not torch.backends.mkldnn.is_available():
        return None
    return torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)


def onednn_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), packed, bias, "none", [], "")


UNQUANTIZED = QuantizationMethod()
