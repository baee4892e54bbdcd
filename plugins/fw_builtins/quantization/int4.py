"""Weight-only int4 for the CPU: groups of 32 input weights share a scale and a minimum,
and a GEMV reads half a byte per weight.

At one or a few tokens per step a CPU forward pass is bound by the bytes of weights it
reads, so 4-bit weights run faster than bf16 there; at larger batches (and prompts) it is
bound by arithmetic, where int8 dot products (VNNI) do twice the work of bf16 ones. So
two copies are kept and each step picks by its number of rows: int4 blocks, and 8-bit
weights per output column for fw's W8A8 GEMM (bf16 on CPUs without VNNI, where that GEMM
is not built). For a GGUF file of Q4_1 tensors the int4 copy is lossless: every Q4_1
block holds its minimum at level 0 and its maximum at level 15, so min-max quantization
recovers the file's own levels; the 8-bit copy rounds them to 1/254 of a row's range. A
GPTQ or AWQ checkpoint brings its own grid (``layer.int4_grid``), onto which its levels
and scales are packed as they are (``int4_groups``).

The GEMV is fw's own CPU kernel (``fw_kernels.cpu``); where that cannot be built, torch's
int4-pack kernel (bf16 scales) takes its place.

Such files store the embedding / LM head at 8 bits (Q8_0), so ``int8_lm_head`` asks the
engine to run the LM head from 8-bit blocks of 32 at small batch as well.
"""

from __future__ import annotations

import torch
from torch import nn

from fw.layers.quantization import QuantizationMethod
from fw_builtins.quantization.int4_groups import pack_on_grid
from fw_kernels import cpu
from fw_kernels.cpu import packing

GROUP = 32
#: at or below this many rows a step uses the int4 kernel, above it the int8 (or bf16) GEMM
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
        grid = layer.__dict__.pop("int4_grid", None)  # a GPTQ/AWQ checkpoint's own grid (fw.model_loader.int4_grids)
        if weight.shape[1] % GROUP:
            super().process_weights_after_loading(layer)  # too narrow to group: plain
            return
        if cpu.supports(weight):
            layer.int4_blocks = packing.pack_int4(weight) if grid is None else pack_on_grid(weight, grid)
        else:
            layer.int4_weight, layer.int4_scales = quantize_int4(weight)
        if weight.dtype == torch.bfloat16 and cpu.int8_gemm_available():
            layer.int8_panels = packing.pack_int8_panels(weight)
            layer.weight.data = weight.new_empty(0)  # the packed copies replace it
            return
        super().process_weights_after_loading(layer)  # the bf16 copy for larger batches

    def apply(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.shape[0] <= INT4_MAX_ROWS:
            blocks = getattr(layer, "int4_blocks", None)
            if blocks is not None:
                return cpu.int4_gemv(x.contiguous(), *blocks, bias, layer.out_features)
            packed = getattr(layer, "int4_weight", None)
            if packed is not None:
                out = torch.ops.aten._weight_int4pack_mm_for_cpu(x.contiguous(), packed, GROUP, layer.int4_scales)
                return out if bias is None else out + bias
        panels = getattr(layer, "int8_panels", None)
        if panels is not None:
            rows = x.reshape(-1, x.shape[-1]).contiguous()
            return cpu.int8_gemm(rows, *panels, bias, layer.out_features).view(*x.shape[:-1], layer.out_features)
        return super().apply(layer, x, bias)

