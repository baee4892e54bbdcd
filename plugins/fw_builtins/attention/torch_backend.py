"""The CPU attention backend: plain torch over the paged KV layout.

Decoding sequences (one query token each) are batched into one gather + one attention
call; prefill chunks run one sequence at a time through scaled_dot_product_attention,
reading their cached context from the pages.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fw.attention.backend import AttentionBackend
from fw.attention.metadata import AttentionMetadata


class TorchAttentionBackend(AttentionBackend):
    name = "torch"

    @classmethod
    def priority(cls, device: torch.device) -> int:
        return 10 if device.type == "cpu" else 0

    def forward(self, query, key, value, kv_cache, metadata: AttentionMetadata):
        key_cache, value_cache = kv_cache[0], kv_cache[1]
        num_blocks, block_size = key_cache.shape[:2]
        flat_k = key_cache.view(num_blocks * block_size, self.num_kv_heads, self.head_size)
        flat_v = value_cache.view(num_blocks * block_size, self.num_kv_heads, self.head_size)
        flat_k.index_copy_(0, metadata.slot_mapping, key)
        flat_v.index_copy_(0, metadata.slot_mapping, value)

        if metadata.is_pure_decode:
            return self._decode(query, key_cache, value_cache, metadata.block_table, metadata.seq_lens,
                                metadata.max_seq_len)
        out = torch.empty_like(query)
        starts, lens = metadata.query_start_loc_host, metadata.seq_lens_host
        decode_rows = [i for i in range(metadata.num_seqs) if starts[i + 1] - starts[i] == 1]
        decoding = set(decode_rows)
        if decode_rows:
            rows = torch.tensor(decode_rows, dtype=torch.long)
            token_rows = torch.tensor([starts[i] for i in decode_rows], dtype=torch.long)
            out[token_rows] = self._decode(
                query[token_rows], key_cache, value_cache, metadata.block_table[rows],
                metadata.seq_lens[rows], max(lens[i] for i in decode_rows),
            )
        for i in range(metadata.num_seqs):
            if i in decoding:
                continue
            start, end = starts[i], starts[i + 1]
            out[start:end] = self._prefill(query[start:end], key[start:end], value[start:end],
                                           key_cache, value_cache, metadata.block_table[i], lens[i])
        return out

    # -- decode: one query per sequence ---------------------------------------------

    def _decode(self, query, key_cache, value_cache, block_table, seq_lens, max_seq_len):
        block_size = key_cache.shape[1]
        num_blocks = -(-max_seq_len // block_size)
        table = block_table[:, :num_blocks].long()
        batch = table.shape[0]
        keys = key_cache[table].view(batch, num_blocks * block_size, self.num_kv_heads, self.head_size)
        values = value_cache[table].view(batch, num_blocks * block_size, self.num_kv_heads, self.head_size)
        positions = torch.arange(num_blocks * block_size, device=query.device)
        visible = positions[None, :] < seq_lens[:, None].to(positions.device)
        if self.sliding_window is not None:
            visible &= positions[None, :] >= (seq_lens[:, None] - self.sliding_window)
        out = self._attend(query.unsqueeze(2), keys.transpose(1, 2), values.transpose(1, 2),
                           visible[:, None, None, :])
        return out.squeeze(2)

    # -- prefill: a chunk of queries over cached context plus itself ----------------

    def _prefill(self, query, key, value, key_cache, value_cache, block_row, seq_len):
        chunk = query.shape[0]
        context = seq_len - chunk
        if context == 0:
            keys, values = key, value  # nothing cached yet: use this step's keys directly
        else:
            block_size = key_cache.shape[1]
            table = block_row[: -(-seq_len // block_size)].long()
            keys = key_cache[table].reshape(-1, self.num_kv_heads, self.head_size)[:seq_len]
            values = value_cache[table].reshape(-1, self.num_kv_heads, self.head_size)[:seq_len]
        q_pos = torch.arange(context, seq_len, device=query.device)[:, None]
        k_pos = torch.arange(seq_len, device=query.device)[None, :]
        visible = k_pos <= q_pos
        if self.sliding_window is not None:
            visible &= k_pos > q_pos - self.sliding_window
        out = self._attend(query.transpose(0, 1)[None], keys.transpose(0, 1)[None],
                           values.transpose(0, 1)[None], visible[None, None])
        return out[0].transpose(0, 1)

    # -- the attention itself ----------------------------------------------------------

    def _attend(self, q, k, v, visible):
        """q [B, Hq, S, D], k/v [B, Hkv, L, D], visible broadcastable to [B, Hq, S, L]."""
        if self.logits_soft_cap is None:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=visible, scale=self.scale,
                                                  enable_gqa=self.num_heads != self.num_kv_heads)
        group = self.num_heads // self.num_kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * self.scale
        scores = self.logits_soft_cap * torch.tanh(scores / self.logits_soft_cap)
        scores = scores.masked_fill(~visible, float("-inf"))
        return torch.matmul(scores.softmax(-1), v.float()).to(q.dtype)
