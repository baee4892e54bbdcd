"""Model time per request, for ``--collect-detailed-traces`` (the span attributes
``gen_ai.latency.time_in_model_forward`` and ``...time_in_model_execute``).

"worker" times the whole model step (the runner: forward pass, logits, sampling);
"model" times the forward passes alone, through forward hooks on the model, so the
runner stays as it is. Each request of a step is charged that step's time, as vLLM
charges it. Nothing is measured when detailed traces are off.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from torch import nn


class StepTiming:
    def __init__(self, model: nn.Module, *, forward: bool, execute: bool):
        self.execute = execute
        self._forward = 0.0
        self._started: float | None = None
        self.measures_forward = forward
        if forward:
            model.register_forward_pre_hook(self._pre)
            model.register_forward_hook(self._post)

    def _pre(self, module: nn.Module, args: Any) -> None:
        self._started = time.perf_counter()

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._started is not None:
            self._forward += time.perf_counter() - self._started
            self._started = None

    def run(self, step: Callable[[], Any], requests: Iterable[Any]) -> Any:
        """Run one model step and charge its time to ``requests``."""
        self._forward = 0.0
        start = time.perf_counter()
        result = step()
        elapsed = time.perf_counter() - start
        for request in requests:
            if self.measures_forward:
                request.model_forward_time = (request.model_forward_time or 0.0) + self._forward
            if self.execute:
                request.model_execute_time = (request.model_execute_time or 0.0) + elapsed
        return result
