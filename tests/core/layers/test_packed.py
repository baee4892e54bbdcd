"""The packed-weight type: a step's row count picks the layout, shards are bit for bit parts
of the whole (what tensor parallelism relies on), and the fused decoder reads only the
layouts it computes."""

from __future__ import annotations

import pytest
import torch

from fw.layers.packed import (
    DensePanels, F32Panels, Int4Blocks, Int8Blocks, Int8Panels, OneDNNWeight, PackedWeight, PlainWeight,
    TorchInt4,
)
from fw_kernels import cpu

needs_kernels = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")
needs_dense = pytest.mark.skipif(not cpu.dense_available(), reason="fw's dense bf16 GEMM is not built on this CPU")
needs_igemm = pytest.mark.skipif(not cpu.int8_gemm_available(), reason="fw's int8 GEMM is not built on this CPU")
needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch has no oneDNN here")

OUT, IN = 70, 128  # 70 rows: neither a multiple of the 16-row blocks nor of the 32-row panels


def weight(dtype=torch.bfloat16) -> torch.Tensor:
    return torch.randn(OUT, IN, generator=torch.Generator().manual_seed(1)).mul(0.05).to(dtype)


LAYOUTS = {
    "plain-fp32": lambda: PlainWeight(weight(torch.float32)),
    "plain-bf16": lambda: PlainWeight(weight()),
    "dense-panels": pytest.param(lambda: DensePanels.pack(weight()), marks=needs_dense),
    "f32-panels": pytest.param(lambda: F32Panels.pack(weight(torch.float32)), marks=needs_kernels),
    "onednn": pytest.param(lambda: OneDNNWeight.pack(weight()), marks=needs_onednn),
    "int4-blocks": pytest.param(lambda: Int4Blocks.pack(weight(torch.float32)), marks=needs_kernels),
    "int8-blocks": pytest.param(lambda: Int8Blocks.pack(weight(torch.float32)), marks=needs_kernels),
    "int8-panels": pytest.param(lambda: Int8Panels.pack(weight()), marks=needs_igemm),
}
ROW_SHARDS = [[(0, 35)], [(35, 70)], [(0, 6), (10, 13), (69, 70)]]


def _input(layout, rows: int) -> torch.Tensor:
    """Activations in a dtype the layout's kernel takes."""
    if isinstance(layout, PlainWeight):
        dtype = layout.weight.dtype
    else:
        dtype = torch.bfloat16 if isinstance(layout, (DensePanels, Int8Panels, OneDNNWeight)) else torch.float32
    return torch.randn(rows, IN, generator=torch.Generator().manual_seed(2)).to(dtype)


@pytest.mark.parametrize("make", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize("ranges", ROW_SHARDS)
def test_row_shards_are_exactly_those_rows(make, ranges):
    layout = make()
    whole = layout.dequantize()
    shard = layout.rows(ranges)
    expected = torch.cat([whole[a:b] for a, b in ranges])
    assert (shard.out_features, shard.in_features) == tuple(expected.shape)
    assert torch.equal(shard.dequantize(), expected)
    x = _input(layout, 3)
    full = torch.cat([layout.matmul(x, None, True)[:, a:b] for a, b in ranges], dim=1)
    if isinstance(layout, (PlainWeight, OneDNNWeight)):  # torch's GEMMs may block a narrower matrix differently
        torch.testing.assert_close(shard.matmul(x, None, True), full)
    else:  # fw's kernels compute each output column on its own
        assert torch.equal(shard.matmul(x, None, True), full)


@pytest.mark.parametrize("make", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_column_shards_are_exactly_those_columns_and_sum_to_the_whole(make):
    layout = make()
    whole = layout.dequantize()
    halves = [layout.columns(0, 64), layout.columns(64, 128)]
    for shard, (a, b) in zip(halves, [(0, 64), (64, 128)]):
        assert torch.equal(shard.dequantize(), whole[:, a:b])
    x = _input(layout, 3)
    parts = halves[0].matmul(x[:, :64].contiguous(), None, True).float() + \
        halves[1].matmul(x[:, 64:].contiguous(), None, True).float()
    full = layout.matmul(x, None, True).float()
    assert (parts - full).abs().max() <= 2e-2 * full.abs().max()  # the same products, summed in two parts


FW_LAYOUTS = {name: make for name, make in LAYOUTS.items() if not name.startswith(("plain", "onednn"))}


@pytest.mark.parametrize("make", FW_LAYOUTS.values(), ids=FW_LAYOUTS.keys())
def test_a_rows_result_does_not_depend_on_the_rows_beside_it(make):
    """fw's kernels sum each output in one order whatever the row count (batch-invariant
    numerics): row r of a 1-row product is bit for bit row r of any product holding it."""
    layout = make()
    x = _input(layout, layout.max_rows or 40)
    whole = layout.matmul(x, None, True)
    for r in (0, x.shape[0] // 2, x.shape[0] - 1):
        assert torch.equal(layout.matmul(x[r:r + 1], None, True)[0], whole[r])
    for rows in range(2, x.shape[0]):
        assert torch.equal(layout.matmul(x[:rows], None, True), whole[:rows])


@needs_kernels
def test_quantized_columns_may_not_split_a_group():
    with pytest.raises(ValueError, match="split a group of 32"):
        Int4Blocks.pack(weight(torch.float32)).columns(0, 48)


def test_layouts_without_a_way_back_refuse_to_shard():
    with pytest.raises(NotImplementedError, match="TorchInt4 weights cannot be sharded"):
        TorchInt4.pack(weight(torch.float32)[:64]).rows([(0, 8)])


@needs_kernels
def test_the_row_count_picks_the_layout():
    w = weight(torch.float32)
    packed = PackedWeight([Int4Blocks.pack(w), PlainWeight(w)])
    assert [type(packed.layout_for(rows)) for rows in (1, 8, 9, 300)] == [Int4Blocks, Int4Blocks, PlainWeight,
                                                                           PlainWeight]
    for rows in (2, 9):
        x = torch.randn(rows, IN)
        assert torch.equal(packed.matmul(x), packed.layout_for(rows).matmul(x, None, False))
    assert packed.matmul(torch.randn(2, 3, IN)).shape == (2, 3, OUT)
    shard = packed.rows([(0, 10)])
    assert [type(layout) for layout in shard.layouts] == [Int4Blocks, PlainWeight] and shard.shape == (10, IN)
    # 4-bit levels and two float16 parameters per 32 weights, plus the plain matrix
    assert packed.nbytes == OUT * IN * 4 + -(-OUT // 16) * 16 * (IN // 2 + IN // 32 * 4)


def test_a_packed_weight_must_serve_every_row_count_with_one_shape():
    w = weight(torch.float32)[:64]  # torch's int4 packing wants multiples of 16 rows
    with pytest.raises(ValueError, match="serve any number of rows"):
        PackedWeight([TorchInt4.pack(w)])
    with pytest.raises(ValueError, match="disagree on its shape"):
        PackedWeight([TorchInt4.pack(w), PlainWeight(w[:10])])


@needs_igemm
def test_the_fused_decoder_reads_only_the_layouts_it_computes():
    w = weight()
    both = PackedWeight([Int4Blocks.pack(w), Int8Panels.pack(w)]).decoder_projection(None)
    assert both.int4 is not None and both.int8 is not None and both.max_rows() is None
    small_only = PackedWeight([Int4Blocks.pack(w), PlainWeight(w)]).decoder_projection(None)
    assert small_only.int8 is None and small_only.max_rows() == cpu.MAX_GEMV_ROWS
    assert PackedWeight([PlainWeight(w)]).decoder_projection(None) is None
    torch_int4 = PackedWeight([TorchInt4.pack(w[:64].float()), Int8Panels.pack(w[:64])])
    assert torch_int4.decoder_projection(None) is None
