"""Random paged batches for the kernel tests.

Every sequence gets dense random keys/values for its whole context; its blocks are a
random choice of the cache's blocks. Cache slots that hold no token are NaN, and the
block tables' padding points at a NaN block, so a kernel that reads where it should not
produces NaN and fails the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PagedBatch:
    query: torch.Tensor  # [T, num_heads, head_size]: the new tokens' queries
    key: torch.Tensor  # [T, num_kv_heads, head_size]: the new tokens' keys
    value: torch.Tensor
    key_cache: torch.Tensor  # [num_blocks, block_size, num_kv_heads, head_size]
    value_cache: torch.Tensor
    block_table: torch.Tensor  # int32 [num_seqs, max_blocks]
    query_start_loc: torch.Tensor  # int32 [num_seqs + 1]
    seq_lens: torch.Tensor  # int32 [num_seqs]
    slot_mapping: torch.Tensor  # int64 [T]
    keys: list[torch.Tensor]  # per sequence, dense [seq_len, num_kv_heads, head_size]
    values: list[torch.Tensor]
    query_lens: list[int]

    @property
    def max_query_len(self) -> int:
        return max(self.query_lens)

    @property
    def max_seq_len(self) -> int:
        return int(self.seq_lens.max())

    def metadata(self):
        """The engine's view of this batch (``fw.attention.metadata.AttentionMetadata``)."""
        from fw.attention.metadata import AttentionMetadata

        return AttentionMetadata(
            num_tokens=self.query.shape[0], num_seqs=len(self.query_lens), max_query_len=self.max_query_len,
            max_seq_len=self.max_seq_len, query_start_loc=self.query_start_loc, seq_lens=self.seq_lens,
            block_table=self.block_table, slot_mapping=self.slot_mapping,
            query_start_loc_host=self.query_start_loc.tolist(), seq_lens_host=self.seq_lens.tolist(),
        )


def make_batch(
    seq_lens: list[int],
    query_lens: list[int] | None = None,
    *,
    num_kv_heads: int = 2,
    group: int = 1,
    head_size: int = 16,
    block_size: int = 16,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    write_new: bool = True,
) -> PagedBatch:
    """``query_lens[i]`` new tokens end sequence ``i`` (default: 1 each, i.e. decoding).

    The cached context is always in the cache; with ``write_new`` the new tokens are too
    (the state attention kernels see), otherwise their slots stay NaN for a writer to fill.
    """
    query_lens = query_lens or [1] * len(seq_lens)
    gen = torch.Generator().manual_seed(seed)
    blocks_per_seq = [-(-n // block_size) for n in seq_lens]
    num_blocks = sum(blocks_per_seq) + 3  # spare blocks stay NaN; the last one is the padding trap
    trap = num_blocks - 1
    order = torch.randperm(num_blocks - 1, generator=gen)
    block_table = torch.full((len(seq_lens), max(blocks_per_seq) + 1), trap, dtype=torch.int32)
    shape = (num_blocks, block_size, num_kv_heads, head_size)
    key_cache = torch.full(shape, float("nan"), dtype=dtype)
    value_cache = torch.full(shape, float("nan"), dtype=dtype)

    keys, values, new_slots, used = [], [], [], 0
    for i, (seq_len, q_len) in enumerate(zip(seq_lens, query_lens)):
        block_table[i, : blocks_per_seq[i]] = order[used: used + blocks_per_seq[i]].int()
        used += blocks_per_seq[i]
        k = torch.randn(seq_len, num_kv_heads, head_size, generator=gen).to(dtype)
        v = torch.randn(seq_len, num_kv_heads, head_size, generator=gen).to(dtype)
        keys.append(k)
        values.append(v)
        pos = torch.arange(seq_len)
        slots = block_table[i].long()[pos // block_size] * block_size + pos % block_size
        stored = seq_len if write_new else seq_len - q_len
        key_cache.view(-1, num_kv_heads, head_size)[slots[:stored]] = k[:stored]
        value_cache.view(-1, num_kv_heads, head_size)[slots[:stored]] = v[:stored]
        new_slots.append(slots[seq_len - q_len:])

    num_tokens = sum(query_lens)
    query = torch.randn(num_tokens, num_kv_heads * group, head_size, generator=gen).to(dtype)
    starts = [0]
    for q_len in query_lens:
        starts.append(starts[-1] + q_len)
    return PagedBatch(
        query=query,
        key=torch.cat([k[n - q:] for k, n, q in zip(keys, seq_lens, query_lens)]),
        value=torch.cat([v[n - q:] for v, n, q in zip(values, seq_lens, query_lens)]),
        key_cache=key_cache, value_cache=value_cache, block_table=block_table,
        query_start_loc=torch.tensor(starts, dtype=torch.int32),
        seq_lens=torch.tensor(seq_lens, dtype=torch.int32),
        slot_mapping=torch.cat(new_slots), keys=keys, values=values, query_lens=list(query_lens),
    )


#: max abs error allowed against the float32 reference, per dtype. float32 is the issue's
#: 1e-5; the half types allow two units in the last place at output magnitudes 2-4 (the
#: largest |randn| values): both sides round their result, and on a GPU the probabilities
#: fed to the P @ V product are rounded too.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def poisoned_like(t: torch.Tensor) -> torch.Tensor:
    """An output buffer full of NaN, so any element a kernel fails to write shows up."""
    return torch.full_like(t, float("nan"))


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    assert not actual.isnan().any(), f"{int(actual.isnan().sum())} unwritten/NaN elements"
    err = (actual.float() - expected.float()).abs().max().item()
    assert err <= TOLERANCE[dtype], f"max abs error {err:.3g} > {TOLERANCE[dtype]:.1g} ({dtype})"
