"""What one engine step produced, per request: the runner fills it, the scheduler and the
output processor consume it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fw.engine.outputs import Logprob
from fw.errors import FwError


@dataclass
class StepOutput:
    #: request id -> tokens sampled this step (absent for a prompt chunk that does not
    #: reach the end of the prompt)
    sampled: dict[str, list[int]] = field(default_factory=dict)
    #: request id -> for each sampled token, {token: Logprob} (requests that asked for logprobs)
    logprobs: dict[str, list[dict[int, Logprob]]] = field(default_factory=dict)
    #: request id -> log-probability of each sampled token (requests that asked for logprobs)
    sampled_logprobs: dict[str, list[float]] = field(default_factory=dict)
    #: request id -> (first prompt position, entries) of prompt logprobs computed this step
    prompt_logprobs: dict[str, tuple[int, list[dict[int, Logprob]]]] = field(default_factory=dict)
    #: requests whose structured-output grammar is complete after this step's token
    grammar_ended: set[str] = field(default_factory=set)
    #: pooling request id -> its output (float32), once the step completed its prompt
    pooled: dict[str, torch.Tensor] = field(default_factory=dict)
    #: parent request id -> why all of its sequences end now (an adapter that cannot be read)
    failed: dict[str, FwError] = field(default_factory=dict)
    #: request id -> (tokens proposed, tokens accepted) of a speculating request; the KV
    #: of its rejected proposals is no longer valid
    speculated: dict[str, tuple[int, int]] = field(default_factory=dict)

    def truncate(self, request_id: str, count: int) -> None:
        """Keep only the first ``count`` tokens the request got (a stop among them)."""
        self.sampled[request_id] = self.sampled[request_id][:count]
        if request_id in self.logprobs:
            self.logprobs[request_id] = self.logprobs[request_id][:count]
            self.sampled_logprobs[request_id] = self.sampled_logprobs[request_id][:count]
