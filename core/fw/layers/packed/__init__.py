"""A weight matrix in the stored forms its kernels read: fw's one packed-weight type.

A quantization method turns a loaded ``[out, in]`` matrix into a ``PackedWeight``: one or
more ``PackedLayout``s, each serving steps up to a number of rows (the int4 GEMV up to 8
rows, the int8 GEMM beyond, say), because at a few rows a CPU step is bound by the bytes
of weights it reads and beyond that by arithmetic. Linear layers and the LM head hold a
``PackedWeight`` and call ``matmul``; tensor parallelism takes row or column shards of it;
the fused CPU decoder reads the kernel views it exposes. This package (with the kernel
bindings in ``fw_kernels.cpu``) is the only code that knows how each layout is stored.

Shards are cut from the stored levels and parameters, never from dequantized floats, so a
shard's weights are bit for bit those of the whole matrix.
"""

from fw.layers.packed.dense import DensePanels, F32Panels, OneDNNWeight, PlainWeight, dense_layout
from fw.layers.packed.layout import PackedLayout, RowRanges
from fw.layers.packed.levels import GroupedLevels, QuantizedMatrix
from fw.layers.packed.quantized import Int4Blocks, Int8Blocks, Int8Panels, TorchInt4
from fw.layers.packed.weight import PackedWeight

__all__ = ["DensePanels", "F32Panels", "GroupedLevels", "Int4Blocks", "Int8Blocks", "Int8Panels", "OneDNNWeight",
           "PackedLayout", "PackedWeight", "PlainWeight", "QuantizedMatrix", "RowRanges", "TorchInt4", "dense_layout"]
