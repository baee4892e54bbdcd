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


class QuantizationMethod:
    """Plain weights in the model dtype."""

    name = "none"

    def create_weights(self, layer: nn.Module, in_features: int, out_features: int,
                       dtype: torch.dtype, device: torch.device) -> None:
        layer.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype, device=device),
                                    requires_grad=False)

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        """Called once all weights are loaded; repack here."""

    def apply(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, layer.weight, bias)


UNQUANTIZED = QuantizationMethod()
