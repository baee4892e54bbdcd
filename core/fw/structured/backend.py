"""The contract of a structured-output backend (a ``fw_register_structured_output_backends``
plugin). A backend compiles a request's constraint once (cached by fw), makes a matcher
per sequence, and turns matcher states into a token bitmask applied to the logits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class GrammarSpec:
    """What to compile: one constraint plus the server-wide JSON options."""

    kind: str  # json | json_object | regex | choice | grammar
    value: Any
    any_whitespace: bool = True
    whitespace_pattern: str | None = None


class GrammarMatcher(Protocol):
    def accept_token(self, token_id: int) -> bool:
        """Advance with a sampled token; False if the grammar did not allow it."""

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        """Write the allowed next tokens into row ``row`` of ``bitmask``."""

    def is_terminated(self) -> bool:
        """True once the grammar is complete (nothing more may follow)."""


class StructuredOutputBackend(ABC):
    name = ""

    def __init__(self, tokenizer: Any, vocab_size: int):
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size

    @abstractmethod
    def compile(self, spec: GrammarSpec) -> Any:
        """Compile ``spec``; raise ValueError with a user-facing reason if it is invalid.
        Called off the engine loop and cached by fw, so it may be slow."""

    @abstractmethod
    def new_matcher(self, compiled: Any) -> GrammarMatcher:
        """A fresh matcher at the start of the grammar."""

    def allocate_bitmask(self, rows: int) -> torch.Tensor:
        """A bitmask with ``rows`` rows, every token allowed. The default layout, which
        xgrammar and llguidance share: int32 words, 32 tokens each, lowest bit first."""
        return torch.full((rows, (self.vocab_size + 31) // 32), -1, dtype=torch.int32)

    def fill_bitmasks(self, matchers: list[GrammarMatcher], bitmask: torch.Tensor, rows: list[int]) -> None:
        """Fill row ``rows[i]`` of ``bitmask`` from ``matchers[i]``; backends may do the
        batch at once (and in parallel)."""
        for matcher, row in zip(matchers, rows):
            matcher.fill_bitmask(bitmask, row)

    def apply_bitmask(self, logits: torch.Tensor, bitmask: torch.Tensor, rows: list[int]) -> None:
        """Set disallowed tokens of ``logits[row]`` to -inf from ``bitmask[row]`` for each
        of ``rows``, in place (for the default layout: the rows' bits are unpacked with
        shifts and masked in one pass, 3-4x faster on the CPU than xgrammar's kernel)."""
        index = torch.tensor(rows, dtype=torch.long, device=logits.device)
        masks = bitmask.to(logits.device).index_select(0, index)
        shifts = torch.arange(32, dtype=torch.int32, device=logits.device)
        allowed = ((masks.unsqueeze(-1) >> shifts) & 1).bool().view(len(rows), -1)[:, : logits.shape[1]]
        if len(rows) == logits.shape[0]:
            logits.masked_fill_(~allowed, float("-inf"))
        else:
            logits[index] = logits.index_select(0, index).masked_fill_(~allowed, float("-inf"))
