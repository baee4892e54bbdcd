"""The engine as its clients (the API server, run-batch, benchmarks) see it.

``fw.engine.async_engine.AsyncEngine`` implements this; tests of the server may use any
object that does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, TypedDict, Union

from fw.engine.outputs import PoolingRequestOutput, RequestOutput
from fw.engine.sampling_params import SamplingParams
from fw.errors import NotSupportedError
from fw.pooling.params import PoolingParams
from fw.pooling.setup import PoolingSetup

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from fw.errors import EngineDeadError
    from fw.lora.request import LoRARequest


class TokensPrompt(TypedDict, total=False):
    prompt_token_ids: list[int]
    #: the text the ids came from, echoed back in outputs when known
    prompt: str
    #: pooling requests to BERT-like models: each token's segment (a pair's second text is 1)
    token_type_ids: list[int]


class TextPrompt(TypedDict):
    prompt: str


#: text (tokenized by the engine, special tokens added), token ids, or one of the dicts
PromptInput = Union[str, list[int], TextPrompt, TokensPrompt]


@dataclass
class ModelInfo:
    """Facts about the served model that clients need before sending anything."""

    #: the first served name (what responses carry)
    name: str
    served_model_names: list[str]
    #: where the weights came from (the /v1/models "root")
    path: str
    max_model_len: int
    vocab_size: int
    max_logprobs: int
    eos_token_ids: list[int]
    chat_template: str | None = None
    #: "generate" or "pooling" (``--runner``)
    runner: str = "generate"
    #: the pooling tasks it serves and their defaults (None: it only generates)
    pooling: PoolingSetup | None = None
    #: the sampling defaults' max_tokens (the model's max_new_tokens), which caps every
    #: request's output; the server's beam search sizes its search with it
    max_new_tokens: int | None = None

    @property
    def tasks(self) -> list[str]:
        """Everything it serves: "generate" (the generate runner) and its pooling tasks."""
        return (["generate"] if self.runner == "generate" else []) + (self.pooling.tasks if self.pooling else [])


@dataclass
class EngineStats:
    num_running: int = 0
    num_waiting: int = 0
    #: fraction of KV blocks in use, 0..1
    kv_cache_usage: float = 0.0
    num_blocks: int = 0
    num_free_blocks: int = 0
    prefix_cache_queries: int = 0
    prefix_cache_hits: int = 0
    num_preemptions: int = 0
    #: speculative decoding (vLLM's counters): proposals, tokens proposed, tokens accepted,
    #: accepted tokens by their position in the proposal
    spec_num_drafts: int = 0
    spec_num_draft_tokens: int = 0
    spec_num_accepted_tokens: int = 0
    spec_accepted_per_position: list[int] = field(default_factory=list)


class EngineClient(ABC):
    model_info: ModelInfo
    tokenizer: "PreTrainedTokenizerBase"

    @abstractmethod
    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        request_id: str,
        *,
        priority: int = 0,
        lora_request: Any = None,
        keep_special_ids: frozenset[int] = frozenset(),
        reasoning_end_ids: tuple[int, ...] | None = None,
    ) -> AsyncIterator[RequestOutput]:
        """Submit one request and stream its outputs (shape per ``params.output_kind``).

        The engine admits it first (``fw.engine.admission``: every request rule, and the
        model's defaults for what ``params`` leaves unset); a refusal raises
        (``InvalidParameterError``, ``ContextLengthError``, ``OverloadedError``) before the
        first output. ``keep_special_ids``: special tokens the text keeps (a parser's
        markers); ``reasoning_end_ids``: the tokens that end the model's reasoning, after
        which a structured-output constraint applies. Closing the iterator early (a client
        that disconnected) aborts the request and frees its KV blocks.
        """

    def encode(self, prompt: PromptInput, params: PoolingParams, request_id: str, *,
               priority: int = 0) -> AsyncIterator[PoolingRequestOutput]:
        """Submit one pooling request; its one output comes when the prompt is pooled.

        The same admission (``Admission.admit_pooling``), scheduler, token budget and
        errors as ``generate``: a refusal raises before the output, and closing the
        iterator early aborts the request. Engines without pooling refuse with
        ``NotSupportedError``."""
        raise NotSupportedError("this engine does not pool", param="task")

    @abstractmethod
    async def abort(self, request_id: str) -> None:
        """Stop a request now; its blocks are freed at once."""

    @abstractmethod
    def stats(self) -> EngineStats:
        """A snapshot for /metrics and health checks."""

    @abstractmethod
    def check_health(self) -> None:
        """Raise ``EngineDeadError`` if the engine loop has died."""

    def on_dead(self, callback: Callable[["EngineDeadError"], None]) -> None:
        """Have ``callback(error)`` called (on the caller's event loop) when no engine is
        left to serve, so the server can stop."""

    def engine_stats(self) -> dict[int, EngineStats | None]:
        """Each engine core's snapshot by data parallel rank (None: that one has died)."""
        return {0: self.stats()}

    @abstractmethod
    async def shutdown(self) -> None:
        """Stop the engine loop and release the model."""

    # LoRA adapters: engines without LoRA support keep these defaults.

    async def add_lora(self, lora_request: LoRARequest) -> bool:
        """Register and load an adapter, so requests may name it. False if an adapter of
        that name is already loaded from the same folder; ``LoRAAdapterError`` (HTTP 400)
        for an adapter fw cannot serve; ``NotSupportedError`` when LoRA is off."""
        raise NotSupportedError("LoRA is not enabled; start the server with --enable-lora")

    async def remove_lora(self, lora_name: str) -> bool:
        """Unregister an adapter now; its in-flight requests finish first. False if unknown."""
        raise NotSupportedError("LoRA is not enabled; start the server with --enable-lora")

    def list_loras(self) -> list[LoRARequest]:
        """The registered adapters (``--lora-modules`` first, then dynamically loaded ones)."""
        return []

    # Sleep mode (--enable-sleep-mode): engines without it keep these defaults.

    async def sleep(self, level: int = 1) -> None:
        """Free the KV cache (level 1) or the weights too (level 2) once idle; requests are
        refused with ``OverloadedError`` (503) until ``wake_up``."""
        raise NotSupportedError("sleep mode is off; start the server with --enable-sleep-mode")

    async def wake_up(self) -> None:
        """Take the memory back; requests are served again."""
        raise NotSupportedError("sleep mode is off; start the server with --enable-sleep-mode")

    def is_sleeping(self) -> bool:
        return False

