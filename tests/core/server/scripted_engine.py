"""An engine whose output is a given text: for the parsing paths of the chat API (tool
calls, reasoning), which need the model to write particular markers."""

from __future__ import annotations

import asyncio
import time

from fw.engine.outputs import CompletionOutput, RequestMetrics, RequestOutput
from fw.engine.sampling_params import SamplingParams
from tests.core.server.fake_engine import FakeEngine


class ScriptedEngine(FakeEngine):
    """Streams ``script`` in chunks of ``chunk`` characters, then finishes with "stop"."""

    def __init__(self, script: str, chunk: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.script = script
        self.chunk = chunk

    async def _generate(self, prompt: dict, params: SamplingParams, request_id: str):
        self.requests.append((request_id, prompt, params))
        ids = list(prompt["prompt_token_ids"])
        pieces = [self.script[i:i + self.chunk] for i in range(0, len(self.script), self.chunk)] or [""]
        timing = RequestMetrics(arrival_time=time.monotonic())
        for step, piece in enumerate(pieces):
            await asyncio.sleep(0)
            last = step == len(pieces) - 1
            tokens = self.tokenizer.encode(piece, add_special_tokens=False)
            outputs = [CompletionOutput(index=i, text=piece, token_ids=tokens,
                                        finish_reason="stop" if last else None) for i in range(params.n)]
            yield RequestOutput(request_id=request_id, prompt=prompt.get("prompt"), prompt_token_ids=ids,
                                outputs=outputs, finished=last, metrics=timing)
