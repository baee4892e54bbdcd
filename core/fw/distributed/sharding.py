"""Which part of a model each tensor-parallel rank holds: arithmetic only, no tensors.

Query heads split evenly. KV heads split evenly when there are at least as many as
ranks; with fewer, each is replicated on ``ranks / kv_heads`` consecutive ranks (vLLM's
rule), so a rank's query heads always share one KV head group. The MLP's intermediate
size splits evenly; the vocabulary splits in parts of ``ceil(vocab / ranks)`` (the last
may be shorter), so the logits gather pads every part to one size.
"""

from __future__ import annotations

from dataclasses import dataclass

from fw.errors import ConfigurationError


@dataclass(frozen=True)
class AttentionShard:
    """The query and KV heads one rank computes, as ``[start, stop)`` head indices."""

    q_heads: tuple[int, int]
    kv_heads: tuple[int, int]

    @property
    def num_heads(self) -> int:
        return self.q_heads[1] - self.q_heads[0]

    @property
    def num_kv_heads(self) -> int:
        return self.kv_heads[1] - self.kv_heads[0]


def check_heads(num_heads: int, num_kv_heads: int, size: int) -> None:
    """Refuse a split that cannot be made, naming both numbers."""
    if num_heads % size:
        raise ConfigurationError(
            f"the model's {num_heads} attention heads do not divide by --tensor-parallel-size {size}")
    if num_kv_heads >= size and num_kv_heads % size:
        raise ConfigurationError(
            f"the model's {num_kv_heads} KV heads do not divide by --tensor-parallel-size {size}")
    if num_kv_heads < size and size % num_kv_heads:
        raise ConfigurationError(
            f"--tensor-parallel-size {size} is not a multiple of the model's {num_kv_heads} KV heads "
            "(with fewer KV heads than ranks each KV head is replicated on the same number of ranks)")


def attention_shard(num_heads: int, num_kv_heads: int, size: int, rank: int) -> AttentionShard:
    check_heads(num_heads, num_kv_heads, size)
    per_rank = num_heads // size
    if num_kv_heads >= size:
        kv_per_rank = num_kv_heads // size
        kv_first = rank * kv_per_rank
    else:  # replicated: ranks r*k .. r*k+k-1 share KV head r (k = size / kv_heads)
        kv_per_rank = 1
        kv_first = rank // (size // num_kv_heads)
    return AttentionShard((rank * per_rank, (rank + 1) * per_rank), (kv_first, kv_first + kv_per_rank))


def even_split(total: int, size: int, rank: int, what: str) -> tuple[int, int]:
    """``[start, stop)`` of an even split of ``total`` (``what`` names it in the error)."""
    if total % size:
        raise ConfigurationError(f"the model's {what} {total} does not divide by --tensor-parallel-size {size}")
    part = total // size
    return rank * part, (rank + 1) * part


def vocab_part(vocab_size: int, size: int) -> int:
    """The size of every rank's vocabulary part (the last one's padded to it)."""
    return -(-vocab_size // size)


def vocab_split(vocab_size: int, size: int, rank: int) -> tuple[int, int]:
    """``[start, stop)`` of the vocabulary this rank embeds and scores."""
    part = vocab_part(vocab_size, size)
    start, stop = rank * part, min((rank + 1) * part, vocab_size)
    if start >= stop:
        raise ConfigurationError(f"a vocabulary of {vocab_size} tokens is too small to split across "
                                 f"--tensor-parallel-size {size} ranks")
    return start, stop
