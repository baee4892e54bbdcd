"""GPTQ checkpoints (AutoGPTQ / GPTQModel / transformers format), 4 bits, unpacked.

Per quantized linear layer ``PREFIX`` (``in`` inputs, ``out`` outputs, ``G`` groups):

* ``PREFIX.qweight``: int32 [in / 8, out], packed along the *input* dimension: bits
  4j..4j+3 of ``qweight[r, c]`` hold the level of input ``8r + j``, output ``c``
  (j = 0 in the lowest bits);
* ``PREFIX.qzeros``: int32 [G, out / 8], packed along the *output* dimension: bits
  4j..4j+3 of ``qzeros[g, c]`` hold the zero point of group ``g``, output ``8c + j``;
* ``PREFIX.scales``: float16 [G, out];
* ``PREFIX.g_idx``: int32 [in], the group of each input column: ``i // group_size``,
  or a shuffle of that with act-order (``desc_act``) (absent in some checkpoints, which
  then mean ``i // group_size``);
* ``PREFIX.bias``: optional, unquantized.

``w[o, i] = (q - z) * scales[g_idx[i], o]`` where the stored zero is ``z - 1`` in the
original (``checkpoint_format: gptq``, "v1") format and ``z`` itself in GPTQModel's
``gptq_v2``. A symmetric checkpoint (``sym: true``) has z = 8 throughout. Group size -1
means one group over all inputs. (The same arithmetic as GPTQModel's and llama.cpp's
``dequant_gptq``.)
"""

from __future__ import annotations

import torch

from fw_builtins.quantization.int4_groups import QuantGroups

BITS = 4
PACK = 32 // BITS
#: the checkpoint formats this reads and whether their stored zero points are z - 1
FORMATS = {"gptq": 1, "gptq_v2": 0}


class FormatError(ValueError):
    """Tensors that do not fit the format; the message names the tensor and the problem."""


def unpack_int32(packed: torch.Tensor, dim: int) -> torch.Tensor:
    """int32 words -> uint8 4-bit values, the 8 nibbles of each word (lowest first)
    spread along ``dim`` (which grows 8-fold)."""
    shifts = torch.arange(0, 32, BITS, dtype=torch.int32)
    words = packed.to(torch.int32).unsqueeze(-1)
    nibbles = torch.bitwise_and(torch.bitwise_right_shift(words, shifts), 15).to(torch.uint8)
    dim = dim % packed.dim()
    # [..., n, ..., 8] -> [..., n * 8, ...]: the nibbles follow their word along dim
    return nibbles.movedim(-1, dim + 1).flatten(dim, dim + 1)


def unpack_gptq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                g_idx: torch.Tensor | None = None, *, checkpoint_format: str = "gptq",
                group_size: int | None = None) -> QuantGroups:
    """One GPTQ layer as ``QuantGroups`` ([out, in] levels, [out, G] zeros and scales)."""
    if checkpoint_format not in FORMATS:
        raise FormatError(f"checkpoint_format {checkpoint_format!r} is not one fw reads ({', '.join(FORMATS)})")
    if qweight.dtype != torch.int32 or qzeros.dtype != torch.int32:
        raise FormatError(f"qweight and qzeros must be int32 (got {qweight.dtype} and {qzeros.dtype}): is this "
                          f"a {BITS}-bit GPTQ checkpoint?")
    inputs, outputs = qweight.shape[0] * PACK, qweight.shape[1]
    groups = scales.shape[0]
    if scales.shape != (groups, outputs) or qzeros.shape != (groups, outputs // PACK) or outputs % PACK:
        raise FormatError(f"shapes do not fit: qweight {tuple(qweight.shape)} (in / 8, out), qzeros "
                          f"{tuple(qzeros.shape)} (groups, out / 8), scales {tuple(scales.shape)} (groups, out)")
    if g_idx is None:
        size = group_size if group_size and group_size > 0 else inputs
        g_idx = torch.arange(inputs) // size
    if g_idx.shape != (inputs,) or int(g_idx.min()) < 0 or int(g_idx.max()) >= groups:
        raise FormatError(f"g_idx {tuple(g_idx.shape)} must give each of the {inputs} inputs a group in 0..{groups - 1}")
    levels = unpack_int32(qweight, 0).t().contiguous()  # [out, in]
    zeros = unpack_int32(qzeros, 1).to(torch.int16).t() + FORMATS[checkpoint_format]
    return QuantGroups(levels, zeros.contiguous(), scales.to(torch.float16).t().contiguous(), g_idx.to(torch.int64))
