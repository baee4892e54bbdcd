"""The four poolers every pooling model uses: the mean of the tokens (sentence-transformers'
default), the first token (BERT's ``[CLS]``), the last token (causal models, where only it
has seen the whole prompt), and every token.

Sums run in float32 over each prompt's own rows (a reduction per prompt, in a fixed order),
so a prompt's output does not depend on the prompts pooled beside it. (``index_add_`` over
the whole step took 40x as long: it runs on one thread, row by row.)
"""

from __future__ import annotations

import torch

from fw.pooling.pooler import Pooler, first_rows


class MeanPooler(Pooler):
    name = "MEAN"

    def pool(self, hidden: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        return [rows.sum(0) / len(rows) for rows in hidden.float().split(lengths)]


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
