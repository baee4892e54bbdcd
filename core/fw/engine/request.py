"""One sequence the engine is generating (a request with n > 1 becomes n of these), or one
prompt it is pooling (``params`` is then a ``PoolingParams``: the prompt is computed, its
hidden states pooled, and nothing is sampled)."""

from __future__ import annotations

import enum
import time
from typing import Any

import torch

from fw.engine.outputs import Logprob
from fw.engine.sampling_params import SamplingParams
from fw.pooling.params import PoolingParams


class RequestStatus(enum.IntEnum):
    WAITING = 0
    RUNNING = 1
    PREEMPTED = 2
    FINISHED_STOPPED = 10
    FINISHED_LENGTH = 11
    FINISHED_ABORTED = 12

    @property
    def finished(self) -> bool:
        return self >= RequestStatus.FINISHED_STOPPED

    @property
    def finish_reason(self) -> str | None:
        return {10: "stop", 11: "length", 12: "abort"}.get(int(self))


class Request:
    def __init__(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        params: SamplingParams | PoolingParams,
        *,
        eos_token_ids: tuple[int, ...] = (),
        arrival_time: float | None = None,
        priority: int = 0,
        lora: Any = None,
        parent_id: str | None = None,
        index: int = 0,
        token_type_ids: list[int] | None = None,
        whole_prompt: bool = False,
        skip_prefix_cache: bool = False,
    ):
        self.request_id = request_id
        self.parent_id = parent_id or request_id
        self.index = index
        self.prompt_token_ids = list(prompt_token_ids)
        self.params = params
        #: the pooling request's params (None: a generating sequence)
        self.pooling: PoolingParams | None = params if isinstance(params, PoolingParams) else None
        #: a pair's segment of each prompt token (BERT's token types), when it has them
        self.token_type_ids = token_type_ids
        #: the prompt is computed in one step, never split (an encoder's bidirectional attention)
        self.whole_prompt = whole_prompt
        #: computed from its first token even when a prefix is cached (prompt logprobs, a
        #: pooler that reads every token)
        self.skip_prefix_cache = skip_prefix_cache or (self.pooling is None and params.prompt_logprobs is not None)
        self.eos_token_ids = eos_token_ids
        self.arrival_time = arrival_time if arrival_time is not None else time.monotonic()
        self.priority = priority
        self.lora = lora
        self.status = RequestStatus.WAITING
        self.all_token_ids: list[int] = list(prompt_token_ids)
        self.num_computed_tokens = 0
        #: prompt tokens found in the prefix cache when first scheduled
        self.num_cached_tokens = -1
        self.stop_reason: int | str | None = None
        # Sampling state.
        self.generator: torch.Generator | None = None
        if self.pooling is None and params.seed is not None:
            self.generator = torch.Generator()
            self.generator.manual_seed(params.seed + index)
        #: tokens a proposer guessed for the next step (speculative decoding), checked by the model then
        self.spec_tokens: list[int] = []
        #: the structured-output matcher, and the token ids that end reasoning (the
        #: constraint applies only after them, when set)
        self.grammar = None
        self.reasoning_end_ids: tuple[int, ...] | None = None
        self.grammar_active = True
        self.output_logprobs: list[dict[int, Logprob]] = []
        self.cumulative_logprob = 0.0
        self.prompt_logprobs: list[dict[int, Logprob] | None] = []
        # Timings for metrics.
        self.first_scheduled_time: float | None = None
        self.first_token_time: float | None = None
        self.last_token_time: float | None = None
        self.finished_time: float | None = None
        #: model time of the steps it took part in (--collect-detailed-traces), else None
        self.model_forward_time: float | None = None
        self.model_execute_time: float | None = None

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.all_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.all_token_ids) - len(self.prompt_token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        return self.all_token_ids[len(self.prompt_token_ids):]

    @property
    def max_tokens(self) -> int:
        if self.pooling is not None:
            return 0
        return self.params.max_tokens  # resolved by the engine before the request is queued

    def append_token(self, token_id: int) -> None:
        self.all_token_ids.append(token_id)

    def sort_key(self) -> tuple[int, float]:
        """Lower runs first under the priority policy (then earlier arrival)."""
        return (self.priority, self.arrival_time)

    def __repr__(self) -> str:
        return (f"Request({self.request_id!r}, status={self.status.name}, tokens={self.num_tokens}, "
                f"computed={self.num_computed_tokens})")
