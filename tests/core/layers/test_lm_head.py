"""The LM head: dense by default; from 8-bit blocks for every step when the quantization
method says the checkpoint stores it at 8 bits (a quantized GGUF file's Q8_0 embedding),
so a token's logits are the same bits whatever the step's size."""

from __future__ import annotations

import pytest
import torch

from fw.layers.embedding import LMHead, VocabEmbedding
from fw.layers.packed import F32Panels, Int8Blocks, PlainWeight
from fw_builtins.quantization.int4 import Int4WeightOnly
from fw_kernels import cpu


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
@pytest.mark.parametrize("rows", [1, 5, 33])
def test_8bit_blocks_reproduce_q8_0_weights(rows):
    weight = q8_0_like(50, 64)
    head = make_head(weight, int8=True)
    assert [type(layout) for layout in head.packed.layouts] == [Int8Blocks]
    assert torch.equal(head.tied_to.weight, weight)  # lookups still read the dense matrix
    x = torch.randn(rows, 64)
    assert torch.allclose(head(x), x @ weight.t(), atol=1e-4)
    assert (head.packed.dequantize() - weight).abs().max() < 1e-6


@pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
def test_bfloat16_logits_of_a_row_do_not_depend_on_the_step():
    weight = q8_0_like(50, 64).bfloat16()
    embedding = VocabEmbedding(50, 64, dtype=torch.bfloat16)
    embedding.weight.data.copy_(weight)
    head = LMHead(50, 64, tied_to=embedding, dtype=torch.bfloat16, quant_method=Int4WeightOnly())
    head.post_load()
    assert [type(layout) for layout in head.packed.layouts] == [Int8Blocks]
    x = torch.randn(37, 64).bfloat16()
    logits = head(x)
    assert logits.dtype == torch.float32
    assert all(torch.equal(head(x[r:r + 1])[0], logits[r]) for r in (0, 4, 5, 36))
    expected = x.float() @ weight.float().t()
    assert (logits - expected).norm() < 0.02 * expected.norm()
