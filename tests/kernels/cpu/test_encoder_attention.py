"""fw's CPU encoder attention (every query of a prompt over every key of that prompt)
against scaled_dot_product_attention per prompt, read straight from a fused q/k/v output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fw_kernels import cpu

pytestmark = pytest.mark.skipif(not cpu.available(), reason="fw's CPU kernels could not be built here")

# prompt lengths (one token, short, long), heads, head size (32, 64 and 128 take the vector
# path, 24 the plain one), dtype
CASES = [
    ([1, 7, 33, 130], 12, 32, torch.float32),
    ([5, 64, 2], 4, 64, torch.float32),
    ([3, 17], 2, 128, torch.float32),
    ([9, 40, 1], 3, 24, torch.float32),
    ([1, 7, 33], 12, 32, torch.bfloat16),
    ([6, 50], 2, 64, torch.bfloat16),
    ([4, 11], 3, 24, torch.bfloat16),
]


def run(lengths, heads, size, dtype):
    width = heads * size
    qkv = torch.randn(sum(lengths), 3 * width, dtype=torch.float32).to(dtype)
    query, key, value = qkv.split(width, dim=-1)  # views with a row stride of 3 * width
    starts = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int64)
    out = cpu.encoder_attention(query, key, value, starts, heads, size ** -0.5, max_len=max(lengths))
    return qkv, starts, out


@pytest.mark.parametrize("lengths, heads, size, dtype", CASES)
def test_each_prompt_attends_to_itself_only(lengths, heads, size, dtype):
    qkv, starts, out = run(lengths, heads, size, dtype)
    width = heads * size
    for start, end in zip(starts[:-1].tolist(), starts[1:].tolist()):
        q, k, v = (t[start:end].float().view(end - start, heads, size).transpose(0, 1)
                   for t in qkv.split(width, dim=-1))
        want = F.scaled_dot_product_attention(q, k, v).transpose(0, 1).reshape(end - start, width)
        tolerance = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
        torch.testing.assert_close(out[start:end].float(), want, **tolerance)


def test_a_prompt_alone_is_bit_equal_to_the_same_prompt_in_a_batch():
    qkv, starts, out = run([5, 12, 40], 12, 32, torch.float32)
    width = 12 * 32
    rows = qkv[5:17].clone()
    alone = cpu.encoder_attention(*rows.split(width, dim=-1), torch.tensor([0, 12]), 12, 32 ** -0.5, max_len=12)
    assert torch.equal(alone, out[5:17])
