"""fw's fused CPU element-wise kernels against the torch code they replace."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fw.layers.rotary import RotaryEmbedding
from fw_kernels import cpu, reference
from tests.kernels.paged import make_batch

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")

# bf16 results may differ from torch's by one rounding step: torch rounds between ops
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}
DTYPES = [torch.float32, torch.bfloat16]


def _close(actual, expected, dtype):
    err = ((actual.float() - expected.float()).abs() / (1 + expected.float().abs())).max().item()
    assert err <= TOLERANCE[dtype], err


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_rms_norm(dtype):
    gen = torch.Generator().manual_seed(0)
    x, residual = (torch.randn(5, 96, generator=gen).to(dtype) for _ in range(2))
    weight = torch.rand(96, generator=gen).to(dtype)
    total = (x.float() + residual.float()).to(dtype)
    expected = F.rms_norm(total.float(), (96,), weight.float(), 1e-6)
    out = cpu.add_rms_norm(x, residual, weight, 1e-6)
    assert torch.equal(residual, total)  # the sum is left in residual, rounded as an add would
    _close(out, expected, dtype)
    _close(cpu.add_rms_norm(x, None, weight, 1e-6), F.rms_norm(x.float(), (96,), weight.float(), 1e-6), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_with_gemmas_one_plus_weight(dtype):
    """Gemma's norms scale by (1 + w) in float32 and round once (transformers' Gemma3RMSNorm)."""
    x = torch.randn(5, 96).to(dtype)
    weight = (torch.randn(96) * 0.5).to(dtype)
    expected = (F.rms_norm(x.float(), (96,), None, 1e-6) * (1.0 + weight.float())).to(dtype)
    out = cpu.add_rms_norm(x, None, weight, 1e-6, 1.0)
    _close(out, expected, dtype)
    if dtype == torch.float32:
        torch.testing.assert_close(out, expected, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 9])
def test_gelu_tanh_and_mul(dtype, rows):
    x = (torch.randn(rows, 2 * 80) * 4).to(dtype)
    expected = F.gelu(x[:, :80].float(), approximate="tanh") * x[:, 80:].float()
    _close(cpu.gelu_tanh_and_mul(x), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 9])
def test_silu_and_mul(dtype, rows):
    x = (torch.randn(rows, 2 * 80) * 4).to(dtype)
    expected = F.silu(x[:, :80].float()) * x[:, 80:].float()
    _close(cpu.silu_and_mul(x), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_rows_result_is_the_same_whether_the_rows_are_split_among_threads_or_not(dtype):
    """Steps of many rows split them among the threads, single rows never are: each row of a
    32-row call equals that row computed alone (a token's result cannot depend on its step)."""
    gen = torch.Generator().manual_seed(0)
    rows, hidden, inter, heads, head_size = 32, 576, 1536, 15, 64
    x, residual = (torch.randn(rows, hidden, generator=gen).to(dtype) for _ in range(2))
    weight = torch.rand(hidden, generator=gen).to(dtype)
    gate_up = (torch.randn(rows, 2 * inter, generator=gen) * 4).to(dtype)
    qkv = torch.randn(rows, heads * head_size, generator=gen).to(dtype)
    positions = torch.randint(0, 2048, (rows,), generator=gen)
    cos_sin = torch.randn(2048, head_size, generator=gen)

    summed = residual.clone()
    normed = cpu.add_rms_norm(x, summed, weight, 1e-6)
    rotated = qkv.clone()
    cpu.rope_neox_(rotated, positions, cos_sin, heads, head_size, head_size)
    for row in range(rows):
        alone = residual[row:row + 1].clone()
        assert torch.equal(cpu.add_rms_norm(x[row:row + 1], alone, weight, 1e-6), normed[row:row + 1])
        assert torch.equal(alone, summed[row:row + 1])
        assert torch.equal(cpu.silu_and_mul(gate_up[row:row + 1]), cpu.silu_and_mul(gate_up)[row:row + 1])
        assert torch.equal(cpu.gelu_tanh_and_mul(gate_up[row:row + 1]), cpu.gelu_tanh_and_mul(gate_up)[row:row + 1])
        one = qkv[row:row + 1].clone()
        cpu.rope_neox_(one, positions[row:row + 1], cos_sin, heads, head_size, head_size)
        assert torch.equal(one, rotated[row:row + 1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rotary_dim", [32, 16])
def test_rope_matches_the_torch_rotation(dtype, rotary_dim):
    rope = RotaryEmbedding(32, rotary_dim, 64, 10000.0, dtype=dtype)
    positions = torch.tensor([0, 5, 63, 17])
    qkv = torch.randn(4, 32 * (4 + 2 + 2)).to(dtype)  # 4 query heads, 2 key heads, 2 value heads
    q, k = qkv[:, :128], qkv[:, 128:192]
    expected_q, expected_k = _torch_rotation(rope, positions, q, k)
    values_before = qkv[:, 192:].clone()
    cpu.rope_neox_(qkv, positions, rope.cos_sin_cache, heads=6, head_size=32, rotary_dim=rotary_dim)
    _close(qkv[:, :128], expected_q, dtype)
    _close(qkv[:, 128:192], expected_k, dtype)
    assert torch.equal(qkv[:, 192:], values_before)  # values are not rotated


def _torch_rotation(rope, positions, q, k):
    cos, sin = rope.cos_sin_cache.index_select(0, positions).unsqueeze(1).chunk(2, dim=-1)
    out = []
    for x in (q, k):
        heads = x.float().view(x.shape[0], -1, rope.head_size)
        x1, x2 = heads[..., : rope.rotary_dim].chunk(2, dim=-1)
        rotated = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, heads[..., rope.rotary_dim:]], dim=-1)
        out.append(rotated.flatten(1))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_write_kv_matches_reference_and_skips_negative_slots(dtype):
    batch = make_batch([3, 18], query_lens=[3, 2], num_kv_heads=2, head_size=16, dtype=dtype, write_new=False)
    slots = batch.slot_mapping.clone()
    slots[1] = -1
    expected_k, expected_v = batch.key_cache.clone(), batch.value_cache.clone()
    reference.write_kv(batch.key, batch.value, expected_k, expected_v, slots)
    cpu.write_kv(batch.key.flatten(1), batch.value.flatten(1), batch.key_cache, batch.value_cache, slots)
    assert torch.equal(batch.key_cache.nan_to_num(7), expected_k.nan_to_num(7))
    assert torch.equal(batch.value_cache.nan_to_num(7), expected_v.nan_to_num(7))


@pytest.mark.parametrize("cols", [5, 16, 49152 + 3])
def test_argmax_takes_the_first_largest(cols):
    logits = torch.randn(6, cols)
    logits[1, 3] = logits[1, cols - 1] = 1e9  # a tie: the first one wins, as in torch
    logits[2, 0] = float("nan")  # NaN never wins
    logits[3] = float("-inf")
    expected = logits.nan_to_num(nan=float("-inf")).argmax(dim=-1)
    assert torch.equal(cpu.argmax(logits), expected)
