"""PoolingParams: what one pooling request asks for, with vLLM's names.

``None`` means "the model's default" (``fw.pooling.setup.PoolingSetup``); the engine's
admission fills it in. Every invalid value raises ``InvalidParameterError`` naming the
parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fw.errors import InvalidParameterError

#: embed: one vector per prompt; classify: class probabilities (a one-label classifier's
#: is a cross-encoder's score); encode: the hidden state of every token
TASKS = ("embed", "classify", "encode")


@dataclass
class PoolingParams:
    task: str = "embed"
    #: Matryoshka models only: keep the first ``dimensions`` of the embedding (then normalise)
    dimensions: int | None = None
    #: L2-normalise the output (embed, encode)
    normalize: bool | None = None
    #: classify: softmax over the logits (sigmoid for one label); False returns the logits
    activation: bool | None = None
    #: keep only the last N prompt tokens (-1: the last max_model_len)
    truncate_prompt_tokens: int | None = None
    extra_args: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InvalidParameterError("task", f"must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.dimensions is not None and self.dimensions < 1:
            raise InvalidParameterError("dimensions", f"must be at least 1, got {self.dimensions}")
        if self.truncate_prompt_tokens is not None and self.truncate_prompt_tokens < 1 \
                and self.truncate_prompt_tokens != -1:
            raise InvalidParameterError("truncate_prompt_tokens",
                                        f"must be at least 1 (or -1: the context length), got "
                                        f"{self.truncate_prompt_tokens}")

    def clone(self, **changes: Any) -> "PoolingParams":
        return replace(self, **changes)
