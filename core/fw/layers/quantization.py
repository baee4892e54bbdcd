"""The contract of a quantization method (a ``fw_register_quantization_methods`` plugin).

A method decides how a linear layer's weights are stored and multiplied. Layers call it
twice: when they are built (``create_weights``: the parameters the checkpoint is loaded
into) and once every weight is loaded (``process_weights_after_loading``: turn them into
the ``fw.layers.packed.PackedWeight`` the layer runs from). The LM head asks it too
(``pack_lm_head``), since a method that reads a quantized file knows how that file stores
the output matrix. A checkpoint tensor reaches the parameters through ``load_weight``,
which is where a method that keeps a quantized file's own levels (a
``fw.layers.packed.QuantizedMatrix``) takes them as they are. The unquantized method is
the default.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from fw.layers.packed import PackedWeight, QuantizedMatrix, dense_layout


class QuantizationMethod:
    """Plain weights in the model dtype, run from their fastest unquantized layout
    (``fw.layers.packed.dense_layout``: fw's bf16 GEMM or oneDNN on a CPU in bfloat16)."""

    name = "none"
    #: the load formats whose files it applies to (None: any); a quantized GGUF file's own
    #: blocks are only in a GGUF file
    formats: ClassVar[frozenset[str] | None] = None
    #: for the supported-models table: which stored types it serves, and how
    stored_types: ClassVar[str] = ""

    def create_weights(self, layer: nn.Module, in_features: int, out_features: int,
                       dtype: torch.dtype, device: torch.device) -> None:
        """Register the parameters the checkpoint fills (``weight`` [out, in] here)."""
        layer.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=dtype, device=device),
                                    requires_grad=False)

    def load_weight(self, layer: nn.Module, tensor: "torch.Tensor | QuantizedMatrix", shard: int | None) -> None:
        """Fill ``layer``'s parameters from a checkpoint tensor (for a merged layer, its
        shard ``shard``). A quantized checkpoint matrix is dequantized to the file's values."""
        if isinstance(tensor, QuantizedMatrix):
            tensor = tensor.dequantize()
        target = layer.weight.data if shard is None else layer.weight.data[layer.shard_slice(shard)]
        if target.shape != tensor.shape:
            part = "" if shard is None else f" (shard {shard})"
            raise ValueError(f"checkpoint shape {tuple(tensor.shape)} != model shape {tuple(target.shape)}{part}")
        target.copy_(tensor)

    def keeps_quantized(self, matrix: QuantizedMatrix) -> bool:
        """Whether an embedding stored as ``matrix`` stays quantized: then ``pack_lm_head``
        receives the matrix itself, and the embedding looks its rows up there."""
        return False

    def process_weights_after_loading(self, layer: nn.Module) -> PackedWeight:
        """The packed form of the loaded parameters; the layer then drops their data."""
        return self.pack(layer.weight.data)

    def pack(self, weight: torch.Tensor) -> PackedWeight:
        """A loaded ``[out, in]`` matrix in this method's layouts."""
        return PackedWeight([dense_layout(weight)])

    def pack_lm_head(self, matrix: "torch.Tensor | QuantizedMatrix") -> PackedWeight:
        """The LM head's ``[vocab, hidden]`` matrix (a copy when tied to the embedding):
        dense unless the method knows the checkpoint stores it quantized."""
        return PackedWeight([dense_layout(matrix)])


UNQUANTIZED = QuantizationMethod()
