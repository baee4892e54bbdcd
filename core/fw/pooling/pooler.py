"""The contract every pooler follows.

A pooler turns the hidden states of a prompt's tokens (the model's last layer) into the
one output the prompt gets: a vector (mean of the tokens, the first token, the last) or
a vector per token. Poolers are plugins (``fw_register_poolers``); the built-ins are
``MEAN``, ``CLS``, ``LAST`` and ``ALL``. What follows the pooler (normalising,
Matryoshka truncation, a classifier head) is the task's, not the pooler's
(``fw.pooling.heads``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch


class Pooler(ABC):
    """Pools many prompts at once; one instance serves a whole engine."""

    #: the name it is registered under (``MEAN``)
    name: ClassVar[str] = ""
    #: whether it reads every token's hidden state; False (the last token only): the
    #: earlier chunks of a causal model's prompt keep no rows for it
    needs_all_tokens: ClassVar[bool] = True
    #: whether each prompt's output is one vector (False: one per token, ``[tokens, H]``)
    one_vector: ClassVar[bool] = True

    @abstractmethod
    def pool(self, hidden: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        """``hidden`` ``[sum(lengths), H]``: the rows of each prompt's tokens, one prompt
        after another (only the last row of each prompt when ``needs_all_tokens`` is
        False, so then every length is 1). Returns one float32 tensor per prompt, ``[H]``
        (or ``[tokens, H]`` when ``one_vector`` is False), and must not depend on the other
        prompts of the batch."""


def first_rows(lengths: list[int]) -> list[int]:
    """The row where each prompt starts."""
    rows, start = [], 0
    for length in lengths:
        rows.append(start)
        start += length
    return rows
