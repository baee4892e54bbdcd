"""AWQ checkpoints (AutoAWQ's GEMM format, as transformers and vLLM read them), 4 bits,
unpacked.

Per quantized linear layer ``PREFIX`` (``in`` inputs, ``out`` outputs, groups of
``group_size`` inputs, ``G = in / group_size``):

* ``PREFIX.qweight``: int32 [in, out / 8], packed along the *output* dimension in AWQ's
  column order: bits 4j..4j+3 of ``qweight[i, c]`` hold output ``8c + ORDER[j]`` with
  ``ORDER = [0, 2, 4, 6, 1, 3, 5, 7]`` (so outputs 0, 2, 4, 6 sit in the low nibbles);
* ``PREFIX.qzeros``: int32 [G, out / 8], the zero points, packed the same way;
* ``PREFIX.scales``: float16 [G, out];
* ``PREFIX.bias``: optional, unquantized.

``w[o, i] = (q - z) * s`` with the group of input ``i`` being ``i // group_size``; AWQ
has no act-order. Only zero-point (asymmetric) checkpoints exist in this format.
"""

from __future__ import annotations

import torch

from fw_builtins.quantization.gptq import PACK, FormatError, unpack_int32
from fw_builtins.quantization.int4_groups import QuantGroups

#: output ``8c + ORDER[j]`` sits in nibble j of word c
ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def awq_columns(outputs: int) -> torch.Tensor:
    """For each output, its position among the unpacked nibbles (the inverse of ORDER)."""
    inverse = torch.tensor([ORDER.index(k) for k in range(PACK)])
    return (torch.arange(outputs) // PACK) * PACK + inverse.repeat(outputs // PACK)


def unpack_awq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, *,
               group_size: int) -> QuantGroups:
    """One AWQ layer as ``QuantGroups`` ([out, in] levels, [out, G] zeros and scales)."""
    if qweight.dtype != torch.int32 or qzeros.dtype != torch.int32:
        raise FormatError(f"qweight and qzeros must be int32 (got {qweight.dtype} and {qzeros.dtype}): is this "
                          "a 4-bit AWQ (GEMM) checkpoint?")
    inputs, outputs = qweight.shape[0], qweight.shape[1] * PACK
    size = group_size if group_size > 0 else inputs
    groups = scales.shape[0]
    if (inputs % size or groups != inputs // size or scales.shape != (groups, outputs)
            or qzeros.shape != (groups, outputs // PACK)):
        raise FormatError(f"shapes do not fit group size {group_size}: qweight {tuple(qweight.shape)} (in, out / 8), "
                          f"qzeros {tuple(qzeros.shape)} (groups, out / 8), scales {tuple(scales.shape)} (groups, out)")
    columns = awq_columns(outputs)
    levels = unpack_int32(qweight, 1)[:, columns].t().contiguous()  # [out, in]
    zeros = unpack_int32(qzeros, 1)[:, columns].to(torch.int16).t().contiguous()
    group_of = torch.arange(inputs) // size
    return QuantGroups(levels, zeros, scales.to(torch.float16).t().contiguous(), group_of)
