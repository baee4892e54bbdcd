"""Adding up a request's DELTA outputs: per choice text, tokens and logprobs; per prompt
its ids and cache hits; and the usage that follows, always prompt + completion = total.

Choices are numbered as OpenAI numbers them in a batch: prompt ``i``'s ``j``-th choice is
``i * n + j``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fw.engine.outputs import CompletionOutput, Logprob, PromptLogprobs, RequestOutput
from fw.server.logprobs import clamp_logprob
from fw.server.protocol.common import PromptTokensDetails, UsageInfo


@dataclass
class Choice:
    index: int
    prompt_index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[dict[int, Logprob]] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    #: whether a chunk of it was streamed (a streamed completion's first one carries the
    #: echoed prompt, its ids and logprobs)
    streamed: bool = False


@dataclass
class PromptInfo:
    token_ids: list[int]
    num_cached_tokens: int = 0
    logprobs: PromptLogprobs | None = None


class Accumulator:
    def __init__(self, prompt_ids: list[list[int]], n: int):
        self.n = n
        self.prompts = [PromptInfo(list(ids)) for ids in prompt_ids]
        self.choices = [Choice(i * n + j, i) for i in range(len(prompt_ids)) for j in range(n)]

    def add(self, prompt_index: int, out: RequestOutput) -> list[tuple[Choice, CompletionOutput]]:
        """Record one output; returns the choices it advanced with their deltas."""
        info = self.prompts[prompt_index]
        info.num_cached_tokens = max(info.num_cached_tokens, out.num_cached_tokens)
        if out.prompt_logprobs is not None:  # the engine sends them once, with a prompt's first output
            info.logprobs = out.prompt_logprobs
        advanced = []
        for delta in out.outputs:
            choice = self.choices[prompt_index * self.n + delta.index]
            choice.text += delta.text
            choice.token_ids.extend(delta.token_ids)
            if delta.logprobs:
                choice.logprobs.extend(delta.logprobs)
            if delta.finish_reason is not None:
                choice.finish_reason = delta.finish_reason
                choice.stop_reason = delta.stop_reason
            advanced.append((choice, delta))
        return advanced

    def usage(self, *, details: bool) -> UsageInfo:
        prompt = sum(len(p.token_ids) for p in self.prompts)
        completion = sum(len(c.token_ids) for c in self.choices)
        usage = UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
        if details:
            usage.prompt_tokens_details = PromptTokensDetails(
                cached_tokens=sum(p.num_cached_tokens for p in self.prompts))
        return usage


def prompt_logprobs_json(info: PromptInfo) -> list[dict[str, dict[str, Any]] | None] | None:
    """vLLM's prompt_logprobs shape: per position ``{token_id: {logprob, rank, decoded_token}}``."""
    if info.logprobs is None:
        return None
    return [
        None if position is None else {
            str(tid): {"logprob": clamp_logprob(lp.logprob), "rank": lp.rank, "decoded_token": lp.decoded_token}
            for tid, lp in position.items()
        }
        for position in info.logprobs
    ]
