"""The CPU attention backend over the paged KV layout.

Where fw's CPU kernels are built (``fw_kernels.cpu``), every step is one call of the
paged decode kernel, which reads the pages in place: a prompt chunk's token at position p
is a query over its sequence's first p + 1 cached positions (its own key and value are
written first), so causal prefill, chunked prefill over cached context and decoding are
the same job. Per-sequence scaled_dot_product_attention on prompts of 64 tokens ran at
~20 GFLOP/s here, ~4x slower than the kernel. Without the kernels, decoding sequences are
batched into one gather of their context and two batched matmuls, and prefill chunks run
one sequence at a time through scaled_dot_product_attention.

A quantized cache (``--kv-cache-dtype int8|fp8``, ``fw.attention.kv_format``) takes the
same single call, of the kernel that reads codes and scales (``attention_quant.c``);
without the kernels, the step is ``fw_kernels.kv_quant`` and ``fw_kernels.reference``:
attention in float32 over the dequantized cache, which is what the kernel computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fw.attention.backend import AttentionBackend
from fw.attention.metadata import AttentionMetadata
from fw_kernels import cpu, kv_quant, reference


class TorchAttentionBackend(AttentionBackend):
    name = "torch"
    fused_cpu_decode = True  # decoder.c runs the same paged decode kernel as this backend

    @classmethod
    def priority(cls, device: torch.device) -> int:
        return 10 if device.type == "cpu" else 0

    @classmethod
    def supports_kv_format(cls, kv_format) -> bool:
        return True

    def forward(self, query, key, value, kv_cache, metadata: AttentionMetadata):
        if self.kv_format.quantized:
            return self._forward_quantized(query, key, value, kv_cache, metadata)
        key_cache, value_cache = kv_cache[0], kv_cache[1]
        num_blocks, block_size = key_cache.shape[:2]
        if self._fused(query, key, value, kv_cache):
            cpu.write_kv(key.flatten(1), value.flatten(1), key_cache, value_cache, metadata.slot_mapping)
            return self._decode_fused(query, kv_cache, *metadata.token_rows())

        flat_k = key_cache.view(num_blocks * block_size, self.num_kv_heads, self.head_size)
        flat_v = value_cache.view(num_blocks * block_size, self.num_kv_heads, self.head_size)
        flat_k.index_copy_(0, metadata.slot_mapping, key)
        flat_v.index_copy_(0, metadata.slot_mapping, value)
        if metadata.is_pure_decode:
            layout = self._decode_layout(metadata, block_size, metadata.block_table, metadata.seq_lens,
                                         metadata.max_seq_len)
            return self._decode(query, kv_cache, layout)
        out = torch.empty_like(query)
        starts, lens = metadata.query_start_loc_host, metadata.seq_lens_host
        decode_rows = [i for i in range(metadata.num_seqs) if starts[i + 1] - starts[i] == 1]
        decoding = set(decode_rows)
        if decode_rows:
            rows = torch.tensor(decode_rows, dtype=torch.long)
            token_rows = torch.tensor([starts[i] for i in decode_rows], dtype=torch.long)
            longest = max(lens[i] for i in decode_rows)
            layout = self._decode_layout(metadata, block_size, metadata.block_table[rows],
                                         metadata.seq_lens[rows], longest, key="mixed")
            out[token_rows] = self._decode(query[token_rows], kv_cache, layout)
        for i in range(metadata.num_seqs):
            if i in decoding:
                continue
            start, end = starts[i], starts[i + 1]
            out[start:end] = self._prefill(query[start:end], key[start:end], value[start:end],
                                           key_cache, value_cache, metadata.block_table[i], lens[i])
        return out

    def _forward_quantized(self, query, key, value, kv_cache, metadata: AttentionMetadata):
        fmt = self.kv_format
        if (cpu.supports(query, key, value) and kv_cache.is_contiguous()
                and all(t[0].is_contiguous() for t in (query, key, value))):
            cpu.write_kv_quant(key.flatten(1), value.flatten(1), kv_cache, metadata.slot_mapping, fmt.code,
                               fmt.dynamic_scales)
            table, lens, longest = metadata.token_rows()
            return cpu.paged_decode_quant(query, kv_cache, fmt.code, table.contiguous(), lens.contiguous(),
                                          self.scale, max_len=longest, sliding_window=self.sliding_window,
                                          soft_cap=self.logits_soft_cap)
        kv_quant.write_kv(key, value, kv_cache, metadata.slot_mapping, fmt.kind, fmt.dynamic_scales)
        key_cache, value_cache = kv_quant.dequantize_cache(kv_cache, fmt.kind)
        return reference.paged_attention_prefill(
            query, key_cache, value_cache, metadata.block_table, metadata.query_start_loc, metadata.seq_lens,
            self.scale, sliding_window=self.sliding_window, soft_cap=self.logits_soft_cap)

    # -- decode: one query per sequence ---------------------------------------------

    @staticmethod
    def _fused(query, key, value, kv_cache) -> bool:
        """Whether fw's CPU kernels take this step: built, float32/bfloat16, and the
        layouts they read (unit stride within a token's heads, a contiguous cache)."""
        return (cpu.supports(query, key, value, kv_cache) and kv_cache.is_contiguous()
                and all(t[0].is_contiguous() for t in (query, key, value)))

    def _decode_fused(self, query, kv_cache, block_table, seq_lens, max_len):
        return cpu.paged_decode(query, kv_cache[0], kv_cache[1], block_table.contiguous(),
                                seq_lens.contiguous(), self.scale, max_len=max_len,
                                sliding_window=self.sliding_window, soft_cap=self.logits_soft_cap)

    def _decode_layout(self, metadata: AttentionMetadata, block_size: int, block_table, seq_lens, max_seq_len,
                       key: str = "decode"):
        """The step's gather indices and additive mask, built once for all layers."""
        cache_key = (key, self.sliding_window)
        if cache_key not in metadata.derived:
            num_blocks = -(-max_seq_len // block_size)
            table = block_table[:, :num_blocks].long()
            length = num_blocks * block_size
            positions = torch.arange(length, device=table.device)
            hidden = positions[None, :] >= seq_lens[:, None].to(positions.device)
            if self.sliding_window is not None:
                hidden |= positions[None, :] < (seq_lens[:, None] - self.sliding_window)
            mask = torch.zeros(hidden.shape, dtype=torch.float32, device=table.device).masked_fill_(hidden, float("-inf"))
            metadata.derived[cache_key] = (table.reshape(-1), mask[:, None, :], table.shape[0], length)
        return metadata.derived[cache_key]

    def _decode(self, query, kv_cache, layout):
        """One gather of the context into a head-major [2, Hkv, B, L, D] copy, then plain
        batched matmuls: at one query per sequence they beat the fused CPU attention
        kernel, whose per-call setup dominates at these sizes."""
        flat_table, mask, batch, length = layout
        group = self.num_heads // self.num_kv_heads
        by_head = kv_cache.permute(0, 3, 1, 2, 4)  # [2, Hkv, num_blocks, block_size, D], a view
        kv = by_head.index_select(2, flat_table).view(2, self.num_kv_heads, batch, length, self.head_size)
        q = query.view(batch, self.num_kv_heads, group, self.head_size).transpose(0, 1)  # [Hkv, B, G, D]
        if batch <= 2:  # tiny matmuls: fp32 has the faster CPU path
            kv, q = kv.float(), q.float()
        scores = torch.matmul(q, kv[0].transpose(-1, -2)).float() * self.scale  # [Hkv, B, G, L]
        if self.logits_soft_cap is not None:
            scores = self.logits_soft_cap * torch.tanh(scores / self.logits_soft_cap)
        probs = (scores + mask).softmax(-1).to(kv.dtype)
        out = torch.matmul(probs, kv[1])  # [Hkv, B, G, D]
        return out.transpose(0, 1).to(query.dtype).reshape(batch, self.num_heads, self.head_size)

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
