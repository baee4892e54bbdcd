"""fw's whole-tensor dequantizers for Q4_0, Q4_1 and Q8_0 give gguf.quants' float32
values exactly, on blocks of random bytes (every level; negative and subnormal scales)."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

from fw_builtins.loaders.gguf_dequant import BLOCK_BYTES, dequantize_blocks


@pytest.mark.parametrize("ggml_type", [T.Q4_0, T.Q4_1, T.Q8_0])
def test_equal_to_gguf_quants(ggml_type):
    rows, cols = 7, 96
    rng = np.random.default_rng(int(ggml_type))
    raw = rng.integers(0, 256, size=(rows, cols // 32 * BLOCK_BYTES[ggml_type]), dtype=np.uint8)
    blocks = raw.reshape(-1, BLOCK_BYTES[ggml_type])
    halves = 2 if ggml_type == T.Q4_1 else 1  # d (and m): float16 at the start of each block
    params = rng.normal(scale=0.01, size=(blocks.shape[0], halves)).astype(np.float16)
    params[::5] = np.float16(3e-7)  # subnormal
    blocks[:, :2 * halves] = params.view(np.uint8)
    expected = dequantize(raw, ggml_type).reshape(-1, 32)
    ours = dequantize_blocks(raw, ggml_type)
    assert ours.dtype == np.float32 and np.array_equal(ours, expected)


def test_other_types_are_left_to_gguf():
    assert dequantize_blocks(np.zeros(22, dtype=np.uint8), T.Q5_0) is None
