"""What the engine returns, in vLLM's shapes (offline API, server, run-batch all use it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Logprob:
    logprob: float
    #: 1-based rank of the token in the distribution it was sampled from
    rank: int | None = None
    decoded_token: str | None = None


#: per output position: token id -> Logprob; the sampled token first, then the top-N
SampleLogprobs = list[dict[int, Logprob]]
#: per prompt position (the first is None: nothing predicts it)
PromptLogprobs = list["dict[int, Logprob] | None"]


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None = None
    logprobs: SampleLogprobs | None = None
    #: "stop", "length", "abort", or None while running
    finish_reason: str | None = None
    #: the stop string or stop token id that ended it (None for EOS or length)
    stop_reason: int | str | None = None

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestMetrics:
    arrival_time: float
    first_scheduled_time: float | None = None
    first_token_time: float | None = None
    last_token_time: float | None = None
    finished_time: float | None = None
    #: seconds of forward passes / of whole model steps (forward and sampling) the request
    #: took part in; measured only with --collect-detailed-traces model / worker
    model_forward_time: float | None = None
    model_execute_time: float | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool
    prompt_logprobs: PromptLogprobs | None = None
    #: prompt tokens whose KV came from the prefix cache
    num_cached_tokens: int = 0
    metrics: RequestMetrics | None = None
    lora_name: str | None = field(default=None)
    #: why the engine ended the request early (finish_reason "abort"), e.g. an adapter
    #: it could not read again; the async engine raises it to the request's caller
    error: Exception | None = None


@dataclass
class PoolingOutput:
    #: a float32 numpy array: an embedding [H], class probabilities [labels], or per-token
    #: states [tokens, H] (numpy, not torch: the API server does not load torch)
    data: Any

    @property
    def embedding(self) -> list[float]:
        return self.data.tolist()


@dataclass
class PoolingRequestOutput:
    """The one output of a pooling request (vLLM's shape); ``outputs`` is None when it
    ended without being pooled (aborted)."""

    request_id: str
    outputs: PoolingOutput | None
    prompt_token_ids: list[int]
    finished: bool = True
    prompt: str | None = None
    metrics: RequestMetrics | None = None
    #: why the engine ended the request early (see RequestOutput.error)
    error: Exception | None = None
