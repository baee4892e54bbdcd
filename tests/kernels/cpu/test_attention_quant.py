"""The quantized KV cache's CPU kernels (kv_quant.c, attention_quant.c) against their torch
twins (fw_kernels.kv_quant) and the reference attention: the write stores exactly the
bytes the twin stores (fp8 conversion included, against torch's float8_e4m3fn), and decode
attention over the codes matches float32 attention over the dequantized cache, for int8 and
fp8, both model dtypes, head sizes on the vector path (64, 128) and off it (40), partial
blocks, a sliding window and a soft cap."""

from __future__ import annotations

import pytest
import torch

from fw_kernels import cpu, kv_quant, reference

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")

KINDS = {"int8": 1, "fp8_e4m3": 2}


def _cache(kind: str, blocks: int, kv_heads: int, block_size: int, head_size: int) -> torch.Tensor:
    return torch.zeros(2, blocks, kv_heads, block_size, head_size + 4,
                       dtype=torch.int8 if kind == "int8" else torch.uint8)


def test_fp8_codes_are_torchs():
    """Every finite e4m3 value, the midpoints between neighbours (ties to even) and random
    magnitudes convert as torch converts them to float8_e4m3fn."""
    values = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.float8_e4m3fn).float()
    values = values[values.isfinite()].sort().values
    ties = (values[1:] + values[:-1]) / 2
    noise = torch.cat([torch.randn(20000) * s for s in (1e-3, 0.1, 3.0, 100.0)]).clamp(-448, 448)
    x = torch.cat([values, ties, noise])[:, None].expand(-1, 16).contiguous()
    cache = _cache("fp8_e4m3", x.shape[0], 1, 1, 16)
    cpu.write_kv_quant(x, x, cache, torch.arange(x.shape[0]), KINDS["fp8_e4m3"], False)
    expected = x[:, 0].to(torch.float8_e4m3fn).view(torch.uint8)
    assert torch.equal(cache[0, :, 0, 0, 0], expected)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("dynamic", [True, False])
def test_write_stores_the_twins_bytes(kind, dtype, dynamic):
    torch.manual_seed(0)
    kv_heads, head_size, block_size, blocks, tokens = 3, 64, 16, 12, 29
    key = (torch.randn(tokens, kv_heads, head_size) * 4).to(dtype)
    value = torch.randn(tokens, kv_heads, head_size).to(dtype)
    key[0, 1] = 0  # a row of zeros: scale 0, codes 0
    slots = torch.randperm(blocks * block_size)[:tokens]
    slots[5] = -1  # a padding row is skipped
    ours, twin = _cache(kind, blocks, kv_heads, block_size, head_size), _cache(kind, blocks, kv_heads, block_size,
                                                                               head_size)
    cpu.write_kv_quant(key.flatten(1), value.flatten(1), ours, slots, KINDS[kind], dynamic)
    kv_quant.write_kv(key, value, twin, slots, kind, dynamic)
    assert torch.equal(ours, twin)
    if kind == "int8" or dynamic:  # within half a step of the row's grid (fp8: 3 mantissa bits)
        written = slots >= 0
        for stored, given in zip(kv_quant.dequantize_cache(twin, kind), (key, value)):
            given = given[written].float()
            error = (stored.flatten(0, 1)[slots[written]] - given).abs()
            bound = given.abs().amax(-1, keepdim=True) / 254 if kind == "int8" else given.abs() / 16 + 1e-3
            assert (error <= bound + 1e-6).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("head_size", [64, 128, 40])
@pytest.mark.parametrize("window,soft_cap", [(None, None), (20, 30.0)])
def test_decode_matches_reference_over_dequantized_cache(kind, dtype, head_size, window, soft_cap):
    torch.manual_seed(1)
    kv_heads, group, block_size, blocks = 2, 3, 16, 64
    cache = _cache(kind, blocks, kv_heads, block_size, head_size)
    rows = torch.randn(blocks * block_size, kv_heads, head_size) * 2
    kv_quant.write_kv(rows, rows.flip(0), cache, torch.arange(blocks * block_size), kind)
    lens = torch.tensor([1, 17, 130, 64, 33], dtype=torch.int32)
    table = torch.randperm(blocks)[: 5 * 9].view(5, 9).to(torch.int32)
    query = torch.randn(5, kv_heads * group, head_size).to(dtype)
    out = cpu.paged_decode_quant(query, cache, KINDS[kind], table, lens, head_size ** -0.5, max_len=130,
                                 sliding_window=window, soft_cap=soft_cap)
    keys, values = kv_quant.dequantize_cache(cache, kind)
    expected = reference.paged_attention_decode(query.float(), keys, values, table, lens, head_size ** -0.5,
                                                sliding_window=window, soft_cap=soft_cap)
    # the vector path rounds the query to bf16 for the scores, as the bf16 cache's kernel does
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)
