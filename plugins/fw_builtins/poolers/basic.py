"""The four poolers every pooling model uses: the mean of the tokens (sentence-transformers'
default), the first token (BERT's ``[CLS]``), the last token (causal models, where only it
has seen the whole prompt), and every token.

Sums run in float32 in a fixed order per prompt (``index_add_`` over its own rows), so a
prompt's output does not depend on the prompts pooled beside it.
"""

from __future__ import annotations

import torch

from fw.pooling.pooler import Pooler, first_rows, segment_ids


class MeanPooler(Pooler):
    name = "MEAN"

    def pool(self, hidden: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        sums = torch.zeros(len(lengths), hidden.shape[-1], dtype=torch.float32, device=hidden.device)
        sums.index_add_(0, segment_ids(lengths, hidden.device), hidden.float())
        counts = torch.tensor(lengths, dtype=torch.float32, device=hidden.device)[:, None]
        return list((sums / counts).unbind(0))


class CLSPooler(Pooler):
    name = "CLS"

    def pool(self, hidden: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        rows = torch.tensor(first_rows(lengths), device=hidden.device)
        return list(hidden.index_select(0, rows).float().unbind(0))


class LastPooler(Pooler):
    name = "LAST"
    needs_all_tokens = False

    def pool(self, hidden: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        ends = torch.tensor(lengths, device=hidden.device).cumsum(0) - 1
        return list(hidden.index_select(0, ends).float().unbind(0))


class AllPooler(Pooler):
    name = "ALL"
    one_vector = False

    def pool(self, hidden: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        return list(hidden.float().split(lengths))
