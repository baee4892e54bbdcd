"""The contract of a speculative-decoding proposer (a ``fw_register_proposers`` plugin).

After each step the engine asks the proposer for up to ``k`` tokens per request that
can speculate. They are scheduled behind the request's last token, the model scores
them all in the next step, and verification keeps the longest run the model agrees with
plus one token of its own: greedy output is exactly what the model alone produces, and
sampled output has exactly its distribution (``fw.speculative.verify``). A proposer
only guesses; a wrong guess costs a little compute, never a wrong token.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from fw.config.speculative import SpeculativeSettings
    from fw.engine.kv_cache_manager import KVCacheManager
    from fw.engine.kv_sizing import KVPlan
    from fw.engine.request import Request
    from fw.layers.attention import Attention


@dataclass
class ProposerContext:
    """What the engine gives a proposer when it is built."""

    settings: SpeculativeSettings
    #: the engine's EngineConfig, tokenizer and LoadedModel (the target)
    engine_config: Any
    tokenizer: Any
    loaded: Any


class Proposer(ABC):
    name: ClassVar[str] = ""

    def __init__(self, context: ProposerContext):
        self.context = context
        self.settings = context.settings

    @abstractmethod
    def propose(self, requests: list[Request], lengths: list[int]) -> list[list[int]]:
        """Up to ``lengths[i]`` guessed next tokens for ``requests[i]`` (its prompt and
        output so far are ``all_token_ids``); fewer, or none, is fine."""

    def kv_layers(self) -> list[Attention]:
        """Attention layers of the proposer's own model whose KV caches use the target's
        block ids (a draft model); the engine sizes its cache for both."""
        return []

    def bind_kv_cache(self, kv: KVCacheManager, plan: KVPlan) -> None:
        """The engine's KV cache manager and plan, once made: a proposer with
        ``kv_layers`` allocates its caches over the same blocks here."""

    def preempted(self, request_id: str) -> None:
        """The request lost its KV blocks (it will recompute them): forget any KV kept."""

    def finished(self, request_id: str) -> None:
        """The request is done: forget what was kept for it."""
