"""Weight-only int4 for the CPU: groups of 32 input weights share a scale and a minimum,
and a GEMV reads half a byte per weight.

At one or a few tokens per step a CPU forward pass is bound by the bytes of weights it
reads, so 4-bit weights run faster than bf16 there; at larger batches (and prompts) it is
bound by arithmetic, where fw's kernel multiplies the int4 levels by int8 activations
(VNNI, 16 weight rows per vector). One copy of each weight, int4 blocks, serves every
step whatever its number of rows, with one arithmetic per (token, output): a token's
result does not depend on the batch, prompt chunk or cached prefix it shares a step with
(batch-invariant numerics, fw's default). For a GGUF file of Q4_1 tensors the copy is
lossless: every Q4_1 block holds its minimum at level 0 and its maximum at level 15, so
min-max quantization recovers the file's own levels. A GPTQ or AWQ checkpoint brings its
own grid (``layer.int4_grid``, see ``fw.model_loader.int4_grids``), onto which its levels
and scales are packed as they are (``int4_groups``). The LM head is 8-bit blocks (the
embedding's precision that such files keep, Q8_0), likewise for every step.

The kernel is fw's own (``fw_kernels.cpu``); where that cannot be built, torch's int4-pack
kernel takes its place up to 8 rows, dense weights beyond (not batch-invariant).
"""

from __future__ import annotations

import torch
from torch import nn

from fw.layers.packed import Int4Blocks, Int8Blocks, PackedWeight, TorchInt4, dense_layout
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
            return PackedWeight([Int4Blocks(*pack_on_grid(weight, grid), *weight.shape, any_rows=True)])
        return self.pack(weight)

    def pack(self, weight: torch.Tensor) -> PackedWeight:
        if weight.shape[1] % GROUP:
            return super().pack(weight)  # too narrow to group: plain
        if cpu.supports(weight):
            return PackedWeight([Int4Blocks.pack(weight, any_rows=True)])
        return PackedWeight([TorchInt4.pack(weight), dense_layout(weight)])

    def pack_lm_head(self, matrix: torch.Tensor) -> PackedWeight:
        if not (cpu.supports(matrix) and matrix.shape[1] % GROUP == 0):
            return super().pack_lm_head(matrix)
        return PackedWeight([Int8Blocks.pack(matrix, any_rows=True)])
