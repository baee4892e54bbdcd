"""Weight layouts of the quantized block kernels (``gemv.c``): 32 input weights per group,
per output row, with a float16 scale and minimum; blocks of ``BLOCK`` (16) output rows
interleaved so that one 64-byte vector holds 4 bytes of each of the 16 rows (a row per
32-bit lane, which ``vpdpbusd`` multiplies with 4 bytes of one input row). Per block and
group: the levels as ``[slots][16 rows][4 bytes]`` (slot j: bytes 4j..4j+3 of each row's
group, 4 slots of int4, 8 of int8), then the 16 rows' scales and the 16 minimums
(``[2][16]`` float16). Rows are padded to a multiple of ``BLOCK`` (zero levels, zero scale
and minimum).

``pack_int4`` is min-max 4-bit (GGUF's Q4_1: a Q4_1 block keeps its minimum at level 0
and its maximum at level 15, so its levels come back exactly); ``pack_int8`` is
absolute-max 8-bit (GGUF's Q8_0). ``unpack_*`` give the dense matrix a packed one
stands for, which the tests and the torch fallback use.

The torch code here is the reference (``*_torch``); where fw's CPU kernels are built,
``pack_int4``, ``pack_int8`` and ``pack_int8_panels`` run their one-pass C versions
(``pack.c``, the same bytes, 20-50x faster), which made packing ~17 s of a first start
on a 135M-parameter model.
"""

from __future__ import annotations

import torch

GROUP = 32
#: output rows per block: one 32-bit lane of a 512-bit vector each
BLOCK = 16
#: bytes of a row's group per lane
LANE_BYTES = 4


def _groups(weight: torch.Tensor) -> torch.Tensor:
    """[padded rows, groups, GROUP] float32."""
    rows, cols = weight.shape
    if cols % GROUP:
        raise ValueError(f"input size {cols} is not a multiple of {GROUP}")
    padded = torch.zeros(-(-rows // BLOCK) * BLOCK, cols, dtype=torch.float32)
    padded[:rows] = weight
    return padded.view(-1, cols // GROUP, GROUP)


def _half(values: torch.Tensor) -> torch.Tensor:
    """Rounded to the float16 the parameters are stored in (levels are chosen against these)."""
    return values.to(torch.float16).float()


def _interleave(per_row: torch.Tensor) -> torch.Tensor:
    """Levels [padded rows, groups, bytes] -> [padded rows / BLOCK, groups, bytes / 4, BLOCK, 4]."""
    rows, groups, width = per_row.shape
    blocked = per_row.reshape(rows // BLOCK, BLOCK, groups, width // LANE_BYTES, LANE_BYTES)
    return blocked.permute(0, 2, 3, 1, 4).contiguous()


def _deinterleave(blocked: torch.Tensor, rows: int) -> torch.Tensor:
    """The inverse of ``_interleave``, cut to ``rows``: [rows, groups, bytes]."""
    count, groups, slots = blocked.shape[:3]
    return blocked.permute(0, 3, 1, 2, 4).reshape(count * BLOCK, groups, slots * LANE_BYTES)[:rows]


def _interleave_params(per_row: torch.Tensor) -> torch.Tensor:
    """(scale, minimum) [padded rows, groups, 2] -> [padded rows / BLOCK, groups, 2, BLOCK]."""
    rows, groups, _ = per_row.shape
    return per_row.reshape(rows // BLOCK, BLOCK, groups, 2).permute(0, 2, 3, 1).contiguous()


def _deinterleave_params(blocked: torch.Tensor, rows: int) -> torch.Tensor:
    """The inverse of ``_interleave_params``, cut to ``rows``: [rows, groups, 2]."""
    count, groups = blocked.shape[:2]
    return blocked.permute(0, 3, 1, 2).reshape(count * BLOCK, groups, 2)[:rows]


def block_rows(packed: torch.Tensor, params: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(bytes [n, groups, bytes per group], parameters [n, groups, 2]) of rows ``index`` of
    ``pack_int4`` or ``pack_int8`` output, read in place (an embedding's lookups)."""
    block, lane = index // BLOCK, index % BLOCK
    rows = packed[block, :, :, lane]  # [n, groups, slots, 4]
    return rows.flatten(2), params[block, :, :, lane]


def _packer(name: str, weight: torch.Tensor):
    """The C version of a packer for ``weight``, or None where the torch one must run."""
    from fw_kernels import cpu

    if weight.dim() != 2 or weight.shape[1] % GROUP or not cpu.supports(weight):
        return None
    return cpu._function(name, weight.dtype)


def _padded(rows: int, multiple: int) -> int:
    return -(-rows // multiple) * multiple


def pack_int4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 [rows / BLOCK, groups, 4, BLOCK, 4], float16 [rows / BLOCK, groups, 2, BLOCK]
    scales and minimums); a row's 16 bytes per group hold element j in the low nibble of
    byte j and element j + 16 in its high nibble (GGUF's Q4_1)."""
    packer = _packer("pack_int4", weight)
    if packer is None:
        return pack_int4_torch(weight)
    weight = weight.contiguous()
    rows, cols = weight.shape
    blocks = torch.empty(_padded(rows, BLOCK) // BLOCK, cols // GROUP, 4, BLOCK, LANE_BYTES, dtype=torch.uint8)
    params = torch.empty(_padded(rows, BLOCK) // BLOCK, cols // GROUP, 2, BLOCK, dtype=torch.float16)
    packer(weight.data_ptr(), rows, cols, blocks.data_ptr(), params.data_ptr())
    return blocks, params


def pack_int4_torch(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``pack_int4`` in torch: the reference."""
    grouped = _groups(weight)
    low, high = grouped.amin(-1, keepdim=True), grouped.amax(-1, keepdim=True)
    scale, low = _half((high - low) / 15), _half(low)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    levels = ((grouped - low) / safe).round().clamp(0, 15).to(torch.uint8)
    packed = levels[..., :16] | (levels[..., 16:] << 4)
    return _interleave(packed), _interleave_params(torch.cat([scale, low], -1)).to(torch.float16)


def unpack_int4(packed: torch.Tensor, scales_mins: torch.Tensor, rows: int) -> torch.Tensor:
    grouped, params = _deinterleave(packed, rows), _deinterleave_params(scales_mins, rows)
    levels, params = torch.cat([grouped & 15, grouped >> 4], -1).float(), params.float()
    return (levels * params[..., :1] + params[..., 1:]).flatten(1)


def pack_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute-max 8-bit: levels q in -127..127 stored as q + 128 (uint8 [rows / BLOCK,
    groups, 8, BLOCK, 4]), with float16 (scale, -128 * scale) [rows / BLOCK, groups, 2, BLOCK],
    so that w = stored * scale + min as in the int4 format."""
    packer = _packer("pack_int8", weight)
    if packer is None:
        return pack_int8_torch(weight)
    weight = weight.contiguous()
    rows, cols = weight.shape
    blocks = torch.empty(_padded(rows, BLOCK) // BLOCK, cols // GROUP, 8, BLOCK, LANE_BYTES, dtype=torch.uint8)
    params = torch.empty(_padded(rows, BLOCK) // BLOCK, cols // GROUP, 2, BLOCK, dtype=torch.float16)
    packer(weight.data_ptr(), rows, cols, blocks.data_ptr(), params.data_ptr())
    return blocks, params


def pack_int8_torch(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``pack_int8`` in torch: the reference."""
    grouped = _groups(weight)
    scale = _half(grouped.abs().amax(-1, keepdim=True) / 127)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    levels = ((grouped / safe).round().clamp(-127, 127) + 128).to(torch.uint8)
    return _interleave(levels), _interleave_params(torch.cat([scale, -128 * scale], -1)).to(torch.float16)


def unpack_int8(packed: torch.Tensor, params: torch.Tensor, rows: int) -> torch.Tensor:
    levels, params = _deinterleave(packed, rows), _deinterleave_params(params, rows)
    params = params.float()
    return (levels.float() * params[..., :1] + params[..., 1:]).flatten(1)


PANEL = 32


def pack_bf16_panels(weight: torch.Tensor) -> torch.Tensor:
    """bfloat16 [ceil(rows / PANEL), cols / 2, PANEL, 2]: panels of PANEL output rows with
    input pairs interleaved, the layout of ``dense.c`` (cols must be even)."""
    rows, cols = weight.shape
    if cols % 2:
        raise ValueError(f"input size {cols} is not even")
    padded = torch.zeros(-(-rows // PANEL) * PANEL, cols, dtype=torch.bfloat16)
    padded[:rows] = weight
    return padded.view(-1, PANEL, cols // 2, 2).permute(0, 2, 1, 3).contiguous()


def pack_f32_panels(weight: torch.Tensor) -> torch.Tensor:
    """float32 [ceil(rows / PANEL), cols, PANEL]: panels of PANEL output rows, each input's
    PANEL weights adjacent, the layout of ``dense_f32.c``."""
    rows, cols = weight.shape
    padded = torch.zeros(-(-rows // PANEL) * PANEL, cols, dtype=torch.float32)
    padded[:rows] = weight
    return padded.view(-1, PANEL, cols).transpose(1, 2).contiguous()


def unpack_f32_panels(panels: torch.Tensor, rows: int) -> torch.Tensor:
    """The float32 matrix [rows, cols] of ``pack_f32_panels`` output."""
    return panels.transpose(1, 2).flatten(0, 1)[:rows]


def pack_int8_panels(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric 8-bit per output row (scale max|w| / 127, levels q in -127..127 stored as
    q + 128) in the layout of ``igemm.c``: (uint8 [ceil(rows / PANEL), cols / 4, PANEL, 4],
    float32 scales [ceil(rows / PANEL) * PANEL]); padded rows have scale 0."""
    packer = _packer("pack_int8_panels", weight)
    if packer is None:
        return pack_int8_panels_torch(weight)
    weight = weight.contiguous()
    rows, cols = weight.shape
    panels = torch.empty(_padded(rows, PANEL) // PANEL, cols // 4, PANEL, 4, dtype=torch.uint8)
    scales = torch.empty(_padded(rows, PANEL), dtype=torch.float32)
    packer(weight.data_ptr(), rows, cols, panels.data_ptr(), scales.data_ptr())
    return panels, scales


def pack_int8_panels_torch(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``pack_int8_panels`` in torch: the reference."""
    rows, cols = weight.shape
    if cols % 4:
        raise ValueError(f"input size {cols} is not a multiple of 4")
    padded = torch.zeros(-(-rows // PANEL) * PANEL, cols, dtype=torch.float32)
    padded[:rows] = weight
    scale = padded.abs().amax(1) / 127
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    levels = ((padded / safe[:, None]).round().clamp(-127, 127) + 128).to(torch.uint8)
    return levels.view(-1, PANEL, cols // 4, 4).permute(0, 2, 1, 3).contiguous(), scale


def unpack_int8_panels(panels: torch.Tensor, scales: torch.Tensor, rows: int) -> torch.Tensor:
    levels = panels.permute(0, 2, 1, 3).flatten(0, 1).flatten(1)
    return ((levels.float() - 128) * scales[:, None])[:rows]


# -- exact round trips through (levels, parameters), for slicing packed weights -------------
# Tensor parallelism takes some output rows or input columns of a packed matrix. Going
# through the stored levels and parameters (never through dequantized floats) keeps every
# shard's weights bit for bit those of the whole.


def int4_parts(packed: torch.Tensor, params: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(levels uint8 [rows, cols], float16 (scale, minimum) [rows, groups, 2]) of ``pack_int4`` output."""
    grouped = _deinterleave(packed, rows)
    return torch.cat([grouped & 15, grouped >> 4], -1).flatten(1), _deinterleave_params(params, rows)


def pack_int4_parts(levels: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of ``int4_parts``."""
    rows, cols = levels.shape
    padded = -(-rows // BLOCK) * BLOCK
    grouped = torch.zeros(padded, cols // GROUP, GROUP, dtype=torch.uint8)
    grouped[:rows] = levels.view(rows, -1, GROUP)
    parameters = torch.zeros(padded, cols // GROUP, 2, dtype=torch.float16)
    parameters[:rows] = params
    return _interleave(grouped[..., :16] | (grouped[..., 16:] << 4)), _interleave_params(parameters)


def int8_parts(packed: torch.Tensor, params: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(stored levels uint8 [rows, cols], float16 (scale, minimum) [rows, groups, 2]) of ``pack_int8`` output."""
    return _deinterleave(packed, rows).flatten(1), _deinterleave_params(params, rows)


def pack_int8_parts(levels: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of ``int8_parts``."""
    rows, cols = levels.shape
    padded = -(-rows // BLOCK) * BLOCK
    grouped = torch.full((padded, cols // GROUP, GROUP), 128, dtype=torch.uint8)
    grouped[:rows] = levels.view(rows, -1, GROUP)
    parameters = torch.zeros(padded, cols // GROUP, 2, dtype=torch.float16)
    parameters[:rows] = params
    return _interleave(grouped), _interleave_params(parameters)


def int8_panel_parts(panels: torch.Tensor, scales: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(stored levels uint8 [rows, cols], float32 scales [rows]) of ``pack_int8_panels`` output."""
    return panels.permute(0, 2, 1, 3).flatten(0, 1).flatten(1)[:rows], scales[:rows]


def pack_int8_panel_parts(levels: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of ``int8_panel_parts`` (padded rows: level 128, scale 0, as ``pack_int8_panels``)."""
    rows, cols = levels.shape
    padded = -(-rows // PANEL) * PANEL
    stored = torch.full((padded, cols), 128, dtype=torch.uint8)
    stored[:rows] = levels
    all_scales = torch.zeros(padded, dtype=torch.float32)
    all_scales[:rows] = scales
    return stored.view(-1, PANEL, cols // 4, 4).permute(0, 2, 1, 3).contiguous(), all_scales


def unpack_bf16_panels(panels: torch.Tensor, rows: int) -> torch.Tensor:
    """The bfloat16 matrix [rows, cols] of ``pack_bf16_panels`` output."""
    return panels.permute(0, 2, 1, 3).flatten(0, 1).flatten(1)[:rows]
