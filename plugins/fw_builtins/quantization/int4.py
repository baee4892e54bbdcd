"""Weight-only int4 for the CPU: groups of 32 input weights share a scale and a minimum,
and a GEMV reads half a byte per weight.

At one or a few tokens per step a CPU forward pass is bound by the bytes of weights it
reads, so 4-bit weights run faster than bf16 there; at larger batches (and prompts) it is
bound by arithmetic, where int8 dot products (VNNI) do twice the work of bf16 ones. So a
weight is packed twice and each step picks by its number of rows: int4 blocks, and 8-bit
weights per output column for fw's W8A8 GEMM (bf16 where that GEMM is not built). For a
GGUF file of Q4_1 tensors the int4 copy is lossless: every Q4_1 block holds its minimum
at level 0 and its maximum at level 15, so min-max quantization recovers the file's own
levels; the 8-bit copy rounds them to 1/254 of a row's range. A GPTQ or AWQ checkpoint
brings its own grid (``layer.int4_grid``, see ``fw.model_loader.int4_grids``), onto which
its levels and scales are packed as they are (``int4_groups``).

The GEMV is fw's own CPU kernel (``fw_kernels.cpu``); where that cannot be built, torch's
int4-pack kernel takes its place. Such files store the embedding / LM head at 8 bits
(Q8_0), so the LM head runs from 8-bit blocks at small batch as well.
"""

from __future__ import annotations

import torch
from torch import nn

from fw.layers.packed import (
    Int4Blocks, Int8Blocks, Int8Panels, PackedWeight, TorchInt4, dense_layout,
)
from fw.layers.quantization import QuantizationMethod
from fw_builtins.quantization.int4_groups import pack_on_grid
from fw_kernels import cpu
from fw_kernels.cpu import packing

GROUP = packing.GROUP


class Int4WeightOnly(QuantizationMethod):
    name = "int4"

    def process_weights_after_loading(self, layer: nn.Module) -> PackedWeight:
        weight = layer.weight.data
        if weight.device.type != "cpu" or weight.dtype not in (torch.bfloat16, torch.float32):
            raise ValueError("the int4 quantization method runs on the CPU, in bfloat16 or float32")
        grid = layer.__dict__.pop("int4_grid", None)  # a GPTQ/AWQ checkpoint's own grid
        if grid is not None and weight.shape[1] % GROUP == 0 and cpu.supports(weight):
            return PackedWeight([Int4Blocks(*pack_on_grid(weight, grid), *weight.shape), _large_batch_layout(weight)])
        return self.pack(weight)

    def pack(self, weight: torch.Tensor) -> PackedWeight:
        if weight.shape[1] % GROUP:
            return super().pack(weight)  # too narrow to group: plain
        small = Int4Blocks.pack(weight) if cpu.supports(weight) else TorchInt4.pack(weight)
        return PackedWeight([small, _large_batch_layout(weight)])

    def pack_lm_head(self, matrix: torch.Tensor) -> PackedWeight:
        if not (cpu.supports(matrix) and matrix.shape[1] % GROUP == 0):
            return super().pack_lm_head(matrix)
        return PackedWeight([Int8Blocks.pack(matrix), _large_batch_layout(matrix)])


def _large_batch_layout(weight: torch.Tensor):
    """8-bit panels for the int8 GEMM where it is built (1.4x the bf16 GEMM at 32 rows), else dense."""
    return Int8Panels.pack(weight) if Int8Panels.applies(weight) else dense_layout(weight)
