"""Token embeddings and the LM head (which may share the embedding's weight)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fw.layers.packed import PackedWeight, QuantizedMatrix
from fw.layers.quantization import UNQUANTIZED, QuantizationMethod


def _load_matrix(module: nn.Module, tensor: "torch.Tensor | QuantizedMatrix") -> None:
    """Into ``module.weight``; a quantized matrix its method keeps is held for ``post_load``."""
    if isinstance(tensor, QuantizedMatrix) and module.quant_method.keeps_quantized(tensor):
        module._stored = tensor
        module.weight.data = module.weight.data.new_empty(0)
        return
    if isinstance(tensor, QuantizedMatrix):
        tensor = tensor.dequantize()
    if tensor.shape != module.weight.shape:
        raise ValueError(f"checkpoint shape {tuple(tensor.shape)} != model shape {tuple(module.weight.shape)}")
    module.weight.data.copy_(tensor)


class VocabEmbedding(nn.Module):
    """Token embeddings; with ``scale`` they are multiplied by it (Gemma scales by
    sqrt(hidden), rounded to the model dtype first as transformers does).

    A quantization method that keeps a quantized file's embedding as it is
    (``keeps_quantized``) packs it like an LM head, and rows are looked up from those
    blocks: a tied LM head then shares them instead of holding a second copy (Gemma 3
    270M's 262k x 640 embedding is two thirds of its weights)."""

    def __init__(self, vocab_size: int, hidden_size: int, *, scale: float | None = None, dtype=torch.float32,
                 device="cpu", quant_method: QuantizationMethod | None = None):
        super().__init__()
        self.vocab_size = vocab_size
        self.scale = scale
        self.quant_method = quant_method or UNQUANTIZED
        self.weight = nn.Parameter(torch.empty(vocab_size, hidden_size, dtype=dtype, device=device),
                                   requires_grad=False)
        #: the quantized matrix rows are looked up from (None: ``weight``), set by ``post_load``
        self.packed: PackedWeight | None = None
        self._stored: QuantizedMatrix | None = None

    def load_weight(self, tensor: "torch.Tensor | QuantizedMatrix") -> None:
        _load_matrix(self, tensor)

    def post_load(self) -> None:
        if self._stored is not None:
            self.packed, self._stored = self.quant_method.pack_lm_head(self._stored), None

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.packed is None:
            embedded = F.embedding(input_ids, self.weight)
        else:
            rows = self.packed.gather_rows(input_ids.reshape(-1)).to(self.weight.dtype)
            embedded = rows.view(*input_ids.shape, -1)
        if self.scale is None:
            return embedded
        return embedded * torch.tensor(self.scale, dtype=embedded.dtype, device=embedded.device)


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
        self._stored: QuantizedMatrix | None = None

    def load_weight(self, tensor: "torch.Tensor | QuantizedMatrix") -> None:
        if self.tied_to is not None:
            raise ValueError("a tied LM head has no weight of its own to load")
        _load_matrix(self, tensor)

    @property
    def matrix(self) -> torch.Tensor:
        return self.tied_to.weight if self.tied_to is not None else self.weight

    def post_load(self) -> None:
        """Pack the matrix (a copy when tied: the embedding still looks rows up in it,
        unless it is kept quantized, whose blocks the head then shares)."""
        if self.tied_to is not None:
            self.tied_to.post_load()
            if self.tied_to.packed is not None:
                self.packed = self.tied_to.packed
                return
        if self._stored is not None:
            self.packed, self._stored = self.quant_method.pack_lm_head(self._stored), None
            return
        self.packed = self.quant_method.pack_lm_head(self.matrix.data)
        if self.tied_to is None:
            self.weight.data = self.weight.data.new_empty(0)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.packed.matmul(hidden, self.bias, float_output=True)
