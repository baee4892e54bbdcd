"""GGUF's common block types dequantized over a whole tensor at once.

``gguf.quants`` dequantizes in chunks of rows, with a numpy call per chunk and part
(~1 s of a first start for a 135M model's Q4_1 tensors); these do the same arithmetic
in a handful of numpy operations over the tensor, so they give the same float32 values
(tests hold them equal to ``gguf.quants``) in half the time. Layouts, per block of 32
weights (ggml's docs): Q4_0 ``d: f16, qs: 16 bytes`` with w = d * (q - 8); Q4_1 ``d:
f16, m: f16, qs: 16 bytes`` with w = d * q + m; Q8_0 ``d: f16, qs: 32 x int8`` with
w = q * d. A 4-bit byte holds weight j in its low nibble and j + 16 in its high one.
"""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T

#: type -> bytes per block of 32
BLOCK_BYTES = {T.Q4_0: 18, T.Q4_1: 20, T.Q8_0: 34}


def dequantize_blocks(raw: np.ndarray, ggml_type: T) -> np.ndarray | None:
    """float32 [blocks, 32] from ``raw`` (uint8, whole blocks), or None for a type this
    module does not handle."""
    size = BLOCK_BYTES.get(ggml_type)
    if size is None:
        return None
    blocks = raw.reshape(-1, size)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    if ggml_type == T.Q8_0:
        return blocks[:, 2:].copy().view(np.int8).astype(np.float32) * d
    packed = blocks[:, size - 16:]
    levels = np.concatenate([packed & np.uint8(15), packed >> np.uint8(4)], axis=1)
    if ggml_type == T.Q4_0:
        return d * (levels.astype(np.int8) - np.int8(8)).astype(np.float32)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    return (d * levels.astype(np.float32)) + m
