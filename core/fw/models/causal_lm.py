"""The part every causal LM shares: a decoder stack under ``model`` (a
``fw.layers.decoder.DecoderModel`` or anything with its ``forward``, ``embed_tokens`` and
``describe``), an LM head tied to its embedding where the config says so, and the
methods of the model contract (``fw.models.interface``). A model plugin builds its stack
and subclasses this."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Mapping, Sequence

import torch
from torch import nn

from fw.layers.embedding import LMHead
from fw.models.description import DecoderDescription
from fw.models.interface import ModelContext
from fw.models.loading import STACKED, load_checkpoint


class CausalLM(nn.Module):
    #: checkpoint projection -> (merged module, shard) (``fw.models.loading``)
    stacked: Mapping[str, tuple[str, int]] = STACKED
    #: (old, new) substrings replaced in checkpoint names before loading
    renames: Sequence[tuple[str, str]] = ()
    #: the checkpoints fw's tests run this architecture on, each with the test file (docs/models.md)
    tested_with: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, config: Any, model: nn.Module, context: ModelContext):
        super().__init__()
        self.config = config
        self.model = model
        tied = bool(getattr(config, "tie_word_embeddings", False))
        self.lm_head = LMHead(config.vocab_size, config.hidden_size, tied_to=model.embed_tokens if tied else None,
                              dtype=context.dtype, device=context.device, quant_method=context.quantization)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, positions)

    def describe_decoder(self) -> DecoderDescription:
        """The stack for fw's fused decode step (``fw.models.description``)."""
        return self.model.describe()

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        tied = self.lm_head.tied_to is not None
        return load_checkpoint(self, weights, stacked=self.stacked, renames=self.renames,
                               skip=lambda name: "rotary_emb.inv_freq" in name or (tied and name == "lm_head.weight"))
