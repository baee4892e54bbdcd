"""vLLM's documented example processor: a request that passes ``target_token`` in its
``vllm_xargs`` (``SamplingParams.extra_args`` offline) gets that token at every step;
every other request is untouched. Enable it with ``--logits-processors target_token``.

It is small on purpose: it shows the whole contract (arguments checked at admission, a
state per request that uses it, one batched change per step over those rows only).
"""

from __future__ import annotations

from typing import Any

import torch
from fw.errors import InvalidParameterError
from fw.logits_processors import LogitsProcessor


class TargetTokenLogitsProcessor(LogitsProcessor):
    xargs = ("target_token",)

    def validate(self, params: Any) -> None:
        target = (params.extra_args or {}).get("target_token")
        if target is None:
            return
        vocab = self.context.vocab_size
        if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < vocab:
            raise InvalidParameterError(
                "vllm_xargs", f"target_token must be a token id in 0..{vocab - 1}, got {target!r}")

    def new_request(self, params: Any, prompt_ids: list[int]) -> int | None:
        return (params.extra_args or {}).get("target_token")

    def apply(self, logits: torch.Tensor, rows: list[int], states: list[int], output_ids: list[list[int]]) -> None:
        index = torch.tensor(rows, dtype=torch.int64, device=logits.device)
        targets = torch.tensor(states, dtype=torch.int64, device=logits.device)
        kept = logits[index, targets]
        logits.index_fill_(0, index, float("-inf"))
        logits[index, targets] = kept
