"""``--quantization gguf``: a quantized file's matrices served from their own levels.

The GGUF loader yields each quantized matrix as a ``fw.layers.packed.QuantizedMatrix``;
this method keeps it instead of letting it be dequantized to the model dtype. Its grouped
levels (``fw_builtins.loaders.gguf_blocks`` states per block type which are exact) become
fw's block layouts: int4 blocks for 4-bit types (Q4_0, Q4_1, Q4_K), 8-bit blocks for the
rest (Q5_0, Q5_1, Q8_0, Q5_K, Q6_K, IQ4_NL, ...), read by the GEMV kernels; a merged
projection whose parts differ in width stores all of them at 8 bits (4-bit levels are
8-bit levels with the same scale and minimum, exactly). An embedding kept quantized is
looked up from its blocks, which a tied LM head shares.

Two methods, one trade:

* ``gguf`` (the default for a GGUF file whose layer weights are quantized, when fw serves
  in bfloat16 on a CPU): the blocks for steps of up to 8 rows (4 for the LM head), and,
  because a larger step is bound by arithmetic, the int8 panels of fw's W8A8 GEMM for
  prompts and batches (the ``int4`` method's rule), made from the dequantized levels:
  about a byte more per weight than the file.
* ``gguf_lean``: the blocks alone, for every step (the GEMV passes over each cached tile
  of weights eight rows at a time): resident weights near the file size, prompts and
  large batches slower (docs/benchmarks.md has both).

Matrices the file stores as floats (F32, F16, BF16) stay plain, as ``none`` keeps them.
Both run on the CPU, in bfloat16 or float32 (where the blocks serve every step).
"""

from __future__ import annotations

import torch
from torch import nn

from fw.layers.packed import GroupedLevels, Int8Panels, PackedWeight, QuantizedMatrix
from fw.layers.quantization import QuantizationMethod
from fw_kernels import cpu

GROUP = 32
#: rows of a matrix dequantized at a time while its int8 panels are made (bounds the
#: float32 copy: 8192 x 640 floats for Gemma 3 270M's 262k-row embedding)
CHUNK = 8192


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
    #: whether steps beyond the blocks' rows run from int8 panels (else the blocks serve all)
    panels = True

    def create_weights(self, layer: nn.Module, in_features: int, out_features: int, dtype: torch.dtype,
                       device: torch.device) -> None:
        """No [out, in] matrix in the model dtype: the checkpoint's parts are held as they
        come (``load_weight``) and packed once all are loaded."""
        if device.type != "cpu" or dtype not in (torch.bfloat16, torch.float32):
            raise ValueError("the gguf quantization method runs on the CPU, in bfloat16 or float32")
        layer.weight = nn.Parameter(torch.empty(0, dtype=dtype, device=device), requires_grad=False)
        layer.checkpoint_parts = {}
        self.dtype = dtype  # the model's (for the LM head, which packs without a layer)

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
            return self.pack_levels(GroupedLevels.cat([part.grouped_levels() for part in parts]), dtype,
                                    cpu.MAX_GEMV_ROWS)
        weight = torch.cat([part.dequantize() if isinstance(part, QuantizedMatrix) else part.float()
                            for part in parts])
        return self.pack(weight.to(dtype))

    def pack_lm_head(self, matrix) -> PackedWeight:
        if isinstance(matrix, QuantizedMatrix):
            # the file's LM head (or embedding): its own blocks up to 4 rows, as the int4
            # method serves a Q8_0 head, and 8-bit panels beyond
            return self.pack_levels(matrix.grouped_levels(), getattr(self, "dtype", torch.bfloat16), 4)
        return super().pack_lm_head(matrix)

    def pack_levels(self, levels: GroupedLevels, dtype: torch.dtype, small_rows: int) -> PackedWeight:
        """The file's levels for steps of up to ``small_rows`` rows and int8 panels beyond
        (where they are built and the model runs in bfloat16), or the levels for all."""
        if self.panels and dtype == torch.bfloat16 and cpu.int8_gemm_available():
            return PackedWeight([levels.layout(small_rows), _int8_panels(levels)])
        return PackedWeight([levels.layout(None)])


class GGUFBlocksLean(GGUFBlocks):
    name = "gguf_lean"
    panels = False


def _int8_panels(levels: GroupedLevels) -> Int8Panels:
    """The W8A8 GEMM's layout of the dequantized levels, made a chunk of rows at a time."""
    rows = levels.shape[0]
    chunks = [Int8Panels.pack(_rows(levels, start, min(start + CHUNK, rows))) for start in range(0, rows, CHUNK)]
    if len(chunks) == 1:
        return chunks[0]
    return Int8Panels(torch.cat([c.panels for c in chunks]), torch.cat([c.scales for c in chunks]), rows,
                      levels.shape[1])


def _rows(levels: GroupedLevels, start: int, stop: int) -> torch.Tensor:
    return GroupedLevels(levels.levels[start:stop], levels.params[start:stop], levels.bits).dequantize()
