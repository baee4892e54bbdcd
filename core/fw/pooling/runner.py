"""The pooling half of a model-runner step.

The runner hands over, for every pooling request it scheduled, the rows of the step's
hidden states that hold its tokens. A prompt completed by this step is pooled (with the
pooler its task uses) and passed through its task's head; a causal model's prompt split
over several steps keeps the rows of its earlier chunks here until then (only the last
row, for a pooler that reads nothing else). Prompts of one task are pooled together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fw import plugins
from fw.engine.request import Request
from fw.engine.step_output import StepOutput
from fw.pooling import heads
from fw.pooling.pooler import Pooler
from fw.pooling.setup import PoolingSetup


@dataclass
class PoolSpan:
    """A pooling request's rows in this step's hidden states."""

    request: Request
    first_row: int
    num_rows: int


class PoolingRunner:
    def __init__(self, model: Any, setup: PoolingSetup):
        self.model = model
        self.setup = setup
        #: task -> its pooler (an unknown name fails here, at start-up)
        self.poolers: dict[str, Pooler] = {task: plugins.load("pooler", name)()
                                           for task, name in setup.poolers.items()}
        #: request id -> hidden rows of its earlier chunks
        self.partial: dict[str, list[torch.Tensor]] = {}

    def forget(self, request_id: str) -> None:
        """Drop what a finished, aborted or preempted request left here."""
        self.partial.pop(request_id, None)

    def collect(self, spans: list[PoolSpan], hidden: torch.Tensor, step: StepOutput) -> None:
        """Keep the rows of unfinished prompts; pool those this step completes into
        ``step.pooled``."""
        done: dict[str, list[tuple[Request, torch.Tensor]]] = {}
        for span in spans:
            request = span.request
            task = request.pooling.task
            first, count = span.first_row, span.num_rows
            if not self.poolers[task].needs_all_tokens:
                first, count = first + count - 1, 1
            rows = hidden[first: first + count]
            end = request.num_computed_tokens + span.num_rows >= request.num_prompt_tokens
            earlier = self.partial.pop(request.request_id, [])
            if not end:
                if self.poolers[task].needs_all_tokens:
                    earlier.append(rows.clone())
                self.partial[request.request_id] = earlier
                continue
            done.setdefault(task, []).append((request, torch.cat([*earlier, rows]) if earlier else rows))
        for task, items in done.items():
            lengths = [rows.shape[0] for _, rows in items]
            pooled = self.poolers[task].pool(torch.cat([rows for _, rows in items]), lengths)
            results = heads.apply(task, self.model, pooled, [request.pooling for request, _ in items])
            for (request, _), result in zip(items, results):
                step.pooled[request.request_id] = result.float().contiguous().clone()
