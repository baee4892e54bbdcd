"""An engine whose output is a given text: for the parsing paths of the chat API (tool
calls, reasoning), which need the model to write particular markers."""

from __future__ import annotations

import asyncio
import time

from fw.engine.outputs import CompletionOutput, RequestMetrics, RequestOutput
from fw.engine.sampling_params import SamplingParams
from tests.core.server.fake_engine import FakeEngine


class ScriptedEngine(FakeEngine):
    """Streams ``script`` in chunks of ``chunk`` characters, then finishes with "stop".

    ``choices`` gives each choice its own pieces instead, one per step, each choice
    finishing at its last piece: an empty piece is a step whose text the engine holds back
    (an incomplete character, the start of a possible stop string)."""

    def __init__(self, script: str = "", chunk: int = 3, *, choices: list[list[str]] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.script = script
        self.chunk = chunk
        self.choices = choices

    def _pieces(self, n: int) -> list[list[str]]:
        if self.choices is not None:
            return self.choices[:n]
        pieces = [self.script[i:i + self.chunk] for i in range(0, len(self.script), self.chunk)] or [""]
        return [pieces] * n

    async def _generate(self, prompt: dict, params: SamplingParams, request_id: str):
        self.requests.append((request_id, prompt, params))
        ids = list(prompt["prompt_token_ids"])
        per_choice = self._pieces(params.n)
        steps = max(len(pieces) for pieces in per_choice)
        timing = RequestMetrics(arrival_time=time.monotonic())
        for step in range(steps):
            await asyncio.sleep(0)
            outputs = [CompletionOutput(index=i, text=pieces[step],
                                        token_ids=self.tokenizer.encode(pieces[step], add_special_tokens=False),
                                        finish_reason="stop" if step == len(pieces) - 1 else None)
                       for i, pieces in enumerate(per_choice) if step < len(pieces)]
            yield RequestOutput(request_id=request_id, prompt=prompt.get("prompt"), prompt_token_ids=ids,
                                outputs=outputs, finished=step == steps - 1, metrics=timing)
