"""Token embeddings and the LM head (which may share the embedding's weight)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fw.layers.packed import PackedWeight
from fw.layers.quantization import UNQUANTIZED, QuantizationMethod


class VocabEmbedding(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, *, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.vocab_size = vocab_size
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size, dtype=dtype, device=device),
                                   requires_grad=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.weight)


class LMHead(nn.Module):
    """``hidden @ W.T``; with ``tied_to`` it reuses the embedding matrix (no copy until it
    is packed).

    The quantization method packs the matrix (``pack_lm_head``): a quantized GGUF file's
    8-bit embedding runs from 8-bit weights. Where fw's CPU kernels compute it, the logits
    come back in float32, their sums unrounded: at bf16's resolution (0.125 around a logit
    of 20) a small model's two best tokens can tie, and greedy decoding would then pick by
    token id."""

    def __init__(self, vocab_size: int, hidden_size: int, *, tied_to: VocabEmbedding | None = None,
                 bias: bool = False, dtype=torch.float32, device="cpu",
                 quant_method: QuantizationMethod | None = None):
        super().__init__()
        self.vocab_size = vocab_size
        self.tied_to = tied_to
        self.quant_method = quant_method or UNQUANTIZED
        if tied_to is None:
            self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size, dtype=dtype, device=device),
                                       requires_grad=False)
        self.bias = (nn.Parameter(torch.zeros(vocab_size, dtype=dtype, device=device), requires_grad=False)
                     if bias else None)
        #: the matrix the forward pass runs from, set by ``post_load``
        self.packed: PackedWeight | None = None

    @property
    def matrix(self) -> torch.Tensor:
        return self.tied_to.weight if self.tied_to is not None else self.weight

    def post_load(self) -> None:
        """Pack the matrix (a copy when tied: the embedding still looks rows up in it)."""
        self.packed = self.quant_method.pack_lm_head(self.matrix.data)
        if self.tied_to is None:
            self.weight.data = self.weight.data.new_empty(0)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.packed.matmul(hidden, self.bias, float_output=True)
