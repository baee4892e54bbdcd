"""Token embeddings and the LM head (which may share the embedding's weight)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fw.layers.quantization import onednn_linear, pack_for_onednn


class VocabEmbedding(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, *, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.vocab_size = vocab_size
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size, dtype=dtype, device=device),
                                   requires_grad=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.weight)


class LMHead(nn.Module):
    """``hidden @ W.T``; with ``tied_to`` it reuses the embedding matrix (no copy)."""

    def __init__(self, vocab_size: int, hidden_size: int, *, tied_to: VocabEmbedding | None = None,
                 bias: bool = False, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.vocab_size = vocab_size
        self.tied_to = tied_to
        if tied_to is None:
            self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size, dtype=dtype, device=device),
                                       requires_grad=False)
        self.bias = (nn.Parameter(torch.zeros(vocab_size, dtype=dtype, device=device), requires_grad=False)
                     if bias else None)

    @property
    def matrix(self) -> torch.Tensor:
        return self.tied_to.weight if self.tied_to is not None else self.weight

    def post_load(self) -> None:
        """Prepack the matrix for oneDNN where that is faster (a copy when tied: the
        embedding still needs the plain matrix for lookups)."""
        self.packed = pack_for_onednn(self.matrix.data)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        packed = getattr(self, "packed", None)
        if packed is not None:
            return onednn_linear(hidden, packed, self.bias)
        return F.linear(hidden, self.matrix, self.bias)
