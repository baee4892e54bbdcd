"""Token embeddings and the LM head (which may share the embedding's weight)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fw.layers.quantization import dense_linear, onednn_linear, pack_dense, pack_for_onednn
from fw_kernels import cpu
from fw_kernels.cpu import packing


class VocabEmbedding(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, *, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.vocab_size = vocab_size
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size, dtype=dtype, device=device),
                                   requires_grad=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.weight)


#: up to this many rows the 8-bit head beats the bf16 GEMM (measured: 2x at 1 row, even at 4-5)
INT8_MAX_ROWS = 4


class LMHead(nn.Module):
    """``hidden @ W.T``; with ``tied_to`` it reuses the embedding matrix (no copy).

    Where fw's CPU kernels compute it, the logits come back in float32, their sums
    unrounded: at bf16's resolution (0.125 around a logit of 20) a small model's two best
    tokens can tie, and greedy decoding would then pick by token id."""

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
        #: set by the engine when the checkpoint stores this matrix at 8 bits (a quantized
        #: GGUF file's Q8_0): small batches then read 8-bit blocks instead of bf16, and
        #: larger ones run the int8 GEMM where it is built (1.35x the bf16 one at 32 rows)
        self.int8_weights = False
        self.int8_blocks: tuple[torch.Tensor, torch.Tensor] | None = None
        self.int8_panels: tuple[torch.Tensor, torch.Tensor] | None = None
        self.dense_panels: torch.Tensor | None = None
        self.packed: torch.Tensor | None = None

    @property
    def matrix(self) -> torch.Tensor:
        return self.tied_to.weight if self.tied_to is not None else self.weight

    def post_load(self) -> None:
        """Prepack the matrix (a copy when tied: the embedding still needs the plain matrix
        for lookups): in 8-bit blocks and panels if asked, else for fw's bf16 GEMM or
        oneDNN where that is faster."""
        matrix = self.matrix.data
        if self.int8_weights and cpu.supports(matrix) and matrix.shape[1] % packing.GROUP == 0:
            self.int8_blocks = packing.pack_int8(matrix)
            if matrix.dtype == torch.bfloat16 and cpu.int8_gemm_available():
                self.int8_panels = packing.pack_int8_panels(matrix)
                return
        self.dense_panels = pack_dense(matrix)
        self.packed = pack_for_onednn(matrix) if self.dense_panels is None else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.int8_blocks is not None and hidden.shape[0] <= INT8_MAX_ROWS:
            return cpu.int8_gemv(hidden.contiguous(), *self.int8_blocks, self.bias, self.vocab_size, float_output=True)
        if self.int8_panels is not None:
            return cpu.int8_gemm(hidden.contiguous(), *self.int8_panels, self.bias, self.vocab_size, float_output=True)
        if self.dense_panels is not None:
            return dense_linear(hidden, self.dense_panels, self.bias, self.vocab_size, float_output=True)
        if self.packed is not None:
            return onednn_linear(hidden, self.packed, self.bias)
        return F.linear(hidden, self.matrix, self.bias)
