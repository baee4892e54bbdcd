"""``--quantization gguf``: a quantized file's matrices served from their own levels.

The GGUF loader yields each quantized matrix as a ``fw.layers.packed.QuantizedMatrix``;
this method keeps it instead of letting it be dequantized to the model dtype. Its grouped
levels (``fw_builtins.loaders.gguf_blocks`` states per block type which are exact) become
fw's block layouts: int4 blocks for 4-bit types (Q4_0, Q4_1, Q4_K), 8-bit blocks for the
rest (Q5_0, Q5_1, Q8_0, Q5_K, Q6_K, IQ4_NL, ...), read by the GEMV kernels; a merged
projection whose parts differ in width stores all of them at 8 bits (4-bit levels are
8-bit levels with the same scale and minimum, exactly). An embedding kept quantized is
looked up from its blocks, which a tied LM head shares.

``gguf`` (the default for a GGUF file whose layer weights are quantized, when fw serves on
a CPU) keeps one copy of each weight, the blocks, for every step: decode steps, batches
and prompts alike (fw's block GEMM multiplies them by int8 activations, 16 weight rows per
vector), so a token's result does not depend on the step it shares (batch-invariant) and
resident weights stay near the file size. ``gguf_lean`` is the same method under the name
it had when ``gguf`` also kept int8 panels for large steps (issue 22 made one copy the
default; docs/benchmarks.md compares them).

Matrices the file stores as floats (F32, F16, BF16) stay plain, as ``none`` keeps them.
Both run on the CPU, in bfloat16 or float32.
"""

from __future__ import annotations

import torch
from torch import nn

from fw.layers.packed import GroupedLevels, PackedWeight, QuantizedMatrix
from fw.layers.quantization import QuantizationMethod
from fw_kernels import cpu

GROUP = 32


def _stored_types() -> str:
    from fw_builtins.loaders.gguf_blocks import EXACT, ROUNDED_PARAMETERS

    def names(types) -> str:
        return ", ".join(t.name for t in types)

    return (f"{names(EXACT)} exactly; {names(ROUNDED_PARAMETERS)} with float16-rounded group scales; "
            "Q6_K and every other type gguf-py reads (Q2_K, Q3_K, IQ...) re-quantized to 8 bits")


class GGUFBlocks(QuantizationMethod):
    name = "gguf"
    formats = frozenset({"gguf"})
    stored_types = _stored_types()

    def create_weights(self, layer: nn.Module, in_features: int, out_features: int, dtype: torch.dtype,
                       device: torch.device) -> None:
        """No [out, in] matrix in the model dtype: the checkpoint's parts are held as they
        come (``load_weight``) and packed once all are loaded."""
        if device.type != "cpu" or dtype not in (torch.bfloat16, torch.float32):
            raise ValueError("the gguf quantization method runs on the CPU, in bfloat16 or float32")
        layer.weight = nn.Parameter(torch.empty(0, dtype=dtype, device=device), requires_grad=False)
        layer.checkpoint_parts = {}

    def load_weight(self, layer: nn.Module, tensor, shard: int | None) -> None:
        index = 0 if shard is None else shard
        rows = layer.out_features if shard is None else layer.shard_sizes[shard]
        expected = (rows, layer.in_features)
        if tuple(tensor.shape) != expected:
            part = "" if shard is None else f" (shard {shard})"
            raise ValueError(f"checkpoint shape {tuple(tensor.shape)} != model shape {expected}{part}")
        layer.checkpoint_parts[index] = tensor

    def keeps_quantized(self, matrix: QuantizedMatrix) -> bool:
        return matrix.shape[1] % GROUP == 0 and cpu.available()

    def process_weights_after_loading(self, layer: nn.Module) -> PackedWeight:
        count = len(getattr(layer, "shard_sizes", None) or [None])
        parts = [layer.checkpoint_parts.get(index) for index in range(count)]
        if any(part is None for part in parts):
            raise ValueError("the gguf quantization method packs a file's own weights; this layer was not "
                             "loaded from one (use it with a .gguf file)")
        del layer.checkpoint_parts
        dtype = layer.weight.dtype
        if all(isinstance(part, QuantizedMatrix) for part in parts) and self.keeps_quantized(parts[0]):
            return PackedWeight([GroupedLevels.cat([part.grouped_levels() for part in parts]).layout()])
        weight = torch.cat([part.dequantize() if isinstance(part, QuantizedMatrix) else part.float()
                            for part in parts])
        return self.pack(weight.to(dtype))

    def pack_lm_head(self, matrix) -> PackedWeight:
        if isinstance(matrix, QuantizedMatrix):  # the file's LM head (or embedding): its own blocks
            return PackedWeight([matrix.grouped_levels().layout()])
        return super().pack_lm_head(matrix)


class GGUFBlocksLean(GGUFBlocks):
    """``gguf`` under its former name for the blocks-only behaviour (kept for command lines
    that name it)."""

    name = "gguf_lean"
