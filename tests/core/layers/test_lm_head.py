"""The LM head: dense by default; from 8-bit blocks at small batch (and the int8 GEMM at
larger ones, in bf16) when the quantization method says the checkpoint stores it at 8 bits (a
quantized GGUF file's Q8_0 embedding)."""

from __future__ import annotations

import pytest
import torch

from fw.layers.embedding import LMHead, VocabEmbedding
from fw.layers.packed import F32Panels, Int8Blocks, Int8Panels, PlainWeight
from fw_builtins.quantization.int4 import Int4WeightOnly
from fw_kernels import cpu
from fw_kernels.cpu import packing

INT8_MAX_ROWS = Int8Blocks.default_rows


def q8_0_like(rows: int, cols: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    levels = torch.randint(-127, 128, (rows, cols // 32, 32), generator=gen)
    levels[..., 0] = 127
    scales = (torch.rand(rows, cols // 32, 1, generator=gen) * 0.01).half().float()  # float16, as in GGUF
    return (levels * scales).view(rows, cols)


#: float32's dense layout: fw's GEMM of fixed summation order where the kernels are built
DENSE_F32 = F32Panels if cpu.dense_f32_available() else PlainWeight


def make_head(weight: torch.Tensor, int8: bool) -> LMHead:
    embedding = VocabEmbedding(*weight.shape)
    embedding.weight.data.copy_(weight)
    head = LMHead(*weight.shape, tied_to=embedding, quant_method=Int4WeightOnly() if int8 else None)
    head.post_load()
    return head


def test_dense_unless_asked():
    weight = torch.randn(50, 64)
    head = make_head(weight, int8=False)
    assert [type(layout) for layout in head.packed.layouts] == [DENSE_F32]
    x = torch.randn(2, 64)
    assert torch.allclose(head(x), x @ weight.t(), atol=1e-5)


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
@pytest.mark.parametrize("rows", [1, INT8_MAX_ROWS, INT8_MAX_ROWS + 1])
def test_8bit_blocks_reproduce_q8_0_weights(rows):
    weight = q8_0_like(50, 64)
    head = make_head(weight, int8=True)
    assert type(head.packed.layout_for(rows)) is (Int8Blocks if rows <= INT8_MAX_ROWS else DENSE_F32)
    assert torch.equal(head.tied_to.weight, weight)  # lookups still read the dense matrix
    x = torch.randn(rows, 64)
    assert torch.allclose(head(x), x @ weight.t(), atol=1e-4)
    assert (head.packed.dequantize() - weight).abs().max() < 1e-6


@pytest.mark.skipif(not cpu.int8_gemm_available(), reason="fw's int8 GEMM is not built on this CPU")
def test_bfloat16_batches_beyond_the_blocks_run_the_int8_gemm():
    weight = q8_0_like(50, 64).bfloat16()
    embedding = VocabEmbedding(50, 64, dtype=torch.bfloat16)
    embedding.weight.data.copy_(weight)
    head = LMHead(50, 64, tied_to=embedding, dtype=torch.bfloat16, quant_method=Int4WeightOnly())
    head.post_load()
    assert [type(layout) for layout in head.packed.layouts] == [Int8Blocks, Int8Panels]
    x = torch.randn(INT8_MAX_ROWS + 3, 64).bfloat16()
    logits = head(x)
    assert logits.dtype == torch.float32
    assert torch.equal(logits, cpu.int8_gemm(x, *packing.pack_int8_panels(weight), None, 50, float_output=True))
    expected = x.float() @ weight.float().t()
    assert (logits - expected).norm() < 0.02 * expected.norm()
