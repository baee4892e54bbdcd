"""Weight-only int4 for the CPU: groups of 32 input weights share a scale and a minimum,
and a GEMV reads half a byte per weight.

At one or a few tokens per step a CPU forward pass is bound by the bytes of weights it
reads, so 4-bit weights run faster than bf16 there; at larger batches the bf16 GEMM on
oneDNN-packed weights wins, so both are kept and each step picks by its number of rows.
For a GGUF file of Q4_1 tensors this is lossless: every Q4_1 block holds its minimum at
level 0 and its maximum at level 15, so min-max quantization recovers the file's own
levels.

The GEMV is fw's own CPU kernel (``fw_kernels.cpu``); where that cannot be built, torch's
int4-pack kernel (bf16 scales) takes its place.

Such files store the embedding / LM head at 8 bits (Q8_0), so ``int8_lm_head`` asks the
engine to run the LM head from 8-bit blocks of 32 at small batch as well.
"""

from __future__ import annotations

import torch
from torch import nn

from fw.layers.quantization import QuantizationMethod
from fw_kernels import cpu
from fw_kernels.cpu import packing

GROUP = 32
#: at or below this many rows a step uses the int4 kernel, above it bf16 oneDNN
INT4_MAX_ROWS = cpu.MAX_GEMV_ROWS


def quantize_int4(weight: torch.Tensor, group: int = GROUP) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed int4 weight, [groups, out, 2] scales and zero points) for torch's kernel,
    which computes ``w = (q - 8) * scale + zero``."""
    out_features, in_features = weight.shape
    grouped = weight.float().view(out_features, in_features // group, group)
    low, high = grouped.amin(-1, keepdim=True), grouped.amax(-1, keepdim=True)
    scale = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny)
    levels = ((grouped - low) / scale).round().clamp(0, 15).to(torch.int32).view(out_features, in_features)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(levels, 1)
    scales_zeros = torch.cat([scale, low + 8 * scale], -1).transpose(0, 1).contiguous()
    return packed, scales_zeros.to(weight.dtype)


class Int4WeightOnly(QuantizationMethod):
    name = "int4"
    int8_lm_head = True

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        weight = layer.weight.data
        if weight.device.type != "cpu" or weight.dtype not in (torch.bfloat16, torch.float32):
            raise ValueError("the int4 quantization method runs on the CPU, in bfloat16 or float32")
        if weight.shape[1] % GROUP:
            super().process_weights_after_loading(layer)  # too narrow to group: plain
            return
        if cpu.supports(weight):
            layer.int4_blocks = packing.pack_int4(weight)
        else:
            layer.int4_weight, layer.int4_scales = quantize_int4(weight)
        super().process_weights_after_loading(layer)  # the oneDNN copy for larger batches

    def apply(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.shape[0] <= INT4_MAX_ROWS:
            blocks = getattr(layer, "int4_blocks", None)
            if blocks is not None:
                return cpu.int4_gemv(x.contiguous(), *blocks, bias, layer.out_features)
            packed = getattr(layer, "int4_weight", None)
            if packed is not None:
                out = torch.ops.aten._weight_int4pack_mm_for_cpu(x.contiguous(), packed, GROUP, layer.int4_scales)
                return out if bias is None else out + bias
        return super().apply(layer, x, bias)

