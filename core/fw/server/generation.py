"""Running prompts through the engine on behalf of one HTTP request.

``engine_stream`` wraps one engine request with logging and metrics and guarantees that
a request which did not finish (the client went away, the handler failed) is aborted,
so its KV blocks are freed. ``Outputs`` runs the one or several prompts of a request:
``start()`` waits for every prompt's first output, so a refusal by the engine (overload,
an unsupported feature) still becomes an HTTP error rather than a broken stream.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import AsyncIterator

import anyio

from fw.engine.outputs import RequestOutput
from fw.engine.protocol import TokensPrompt
from fw.engine.sampling_params import SamplingParams
from fw.errors import FwError
from fw.lora.request import LoRARequest
from fw.server.context import ServerContext
from fw.server.errors import rename_param
from fw.server.prompts import Prompt

logger = logging.getLogger("fw.server")


@dataclass
class Submission:
    prompt: Prompt
    params: SamplingParams
    request_id: str
    #: the adapter the request names, marker tokens parsers need kept, and the token ids
    #: that end reasoning (a constraint starts after them): see ``EngineClient.generate``
    lora_request: LoRARequest | None = None
    keep_special_ids: frozenset[int] = frozenset()
    reasoning_end_ids: tuple[int, ...] | None = None
    #: the engine's parameter names -> this API's, for the errors of its refusals
    param_names: dict[str, str] = field(default_factory=dict)


async def _abort(ctx: ServerContext, request_id: str) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await ctx.engine.abort(request_id)
        except Exception:  # noqa: BLE001 - aborting is best effort; the request is gone anyway
            logger.exception("aborting request %s failed", request_id)


async def engine_stream(ctx: ServerContext, sub: Submission, priority: int, *,
                        admit: bool = True) -> AsyncIterator[RequestOutput]:
    """``admit`` False: the request is part of work already admitted (a later step of a
    beam search), so a draining server does not refuse it."""
    if admit:
        ctx.lifecycle.admit()
    prompt = sub.prompt
    ctx.request_log.request(sub.request_id, prompt.text, prompt.token_ids, sub.params)
    tracker = ctx.metrics.track(len(prompt.token_ids))
    texts: dict[int, str] = {}
    reasons: dict[int, str | None] = {}
    engine_prompt = TokensPrompt(prompt_token_ids=prompt.token_ids)
    if prompt.text is not None:
        engine_prompt["prompt"] = prompt.text
    outputs = ctx.engine.generate(engine_prompt, sub.params, sub.request_id, priority=priority,
                                  lora_request=sub.lora_request, keep_special_ids=sub.keep_special_ids,
                                  reasoning_end_ids=sub.reasoning_end_ids)
    finished = refused = False
    started = False
    ctx.lifecycle.started(sub.request_id)
    generated = 0
    try:
        async for out in outputs:
            if not started:
                tracker.num_prompt_tokens = len(out.prompt_token_ids)  # as admitted (truncated)
            started = True
            tracker.observe(out)
            generated += sum(len(o.token_ids) for o in out.outputs)
            if out.finished and ctx.tracer is not None:
                ctx.tracer.record(request_id=sub.request_id, model=out.lora_name or ctx.model_info.name,
                                  params=sub.params, prompt_tokens=tracker.num_prompt_tokens, last=out,
                                  completion_tokens=generated)
            if ctx.request_log.log_outputs:
                for o in out.outputs:
                    texts[o.index] = texts.get(o.index, "") + o.text
                    reasons[o.index] = o.finish_reason
            finished = out.finished
            yield out
            if finished:
                break
        if finished and ctx.lifecycle.cut and any(o.finish_reason == "abort" for o in out.outputs):
            raise ctx.lifecycle.shutdown_error()  # after the abort chunk: an error event, then [DONE]
    except FwError as exc:
        refused = not started  # the engine turned it down: nothing to abort
        rename_param(exc, sub.param_names)
        raise
    finally:
        ctx.lifecycle.ended(sub.request_id)
        if not finished and not refused:
            await _abort(ctx, sub.request_id)
            tracker.aborted(sub.params.n)
        close = getattr(outputs, "aclose", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await close()
        ctx.request_log.output(sub.request_id, texts, reasons)


class Outputs:
    """The outputs of a request's prompts as ``(prompt_index, RequestOutput)`` pairs."""

    def __init__(self, ctx: ServerContext, subs: list[Submission], priority: int):
        self.streams = [engine_stream(ctx, sub, priority) for sub in subs]
        self.firsts: list[RequestOutput] = []

    def admitted_prompts(self) -> list[Prompt]:
        """Each prompt as the engine admitted it (truncated, with its text only if whole);
        after ``start``."""
        return [Prompt(first.prompt, list(first.prompt_token_ids)) for first in self.firsts]

    async def start(self) -> None:
        """Wait for every prompt's first output; on failure, close them all."""
        try:
            for stream in self.streams:
                self.firsts.append(await stream.__anext__())
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        for stream in self.streams:
            await stream.aclose()

    async def __aiter__(self) -> AsyncIterator[tuple[int, RequestOutput]]:
        try:
            if len(self.streams) == 1:
                yield 0, self.firsts[0]
                async for out in self.streams[0]:
                    yield 0, out
            else:
                async for item in self._merged():
                    yield item
        finally:
            await self.aclose()

    async def _merged(self) -> AsyncIterator[tuple[int, RequestOutput]]:
        queue: asyncio.Queue = asyncio.Queue()
        done = object()

        async def pump(index: int, stream: AsyncIterator[RequestOutput]) -> None:
            try:
                async for out in stream:
                    queue.put_nowait((index, out))
            except Exception as exc:  # noqa: BLE001 - handed to the consumer
                queue.put_nowait((index, exc))
            finally:
                queue.put_nowait((index, done))

        for index, first in enumerate(self.firsts):
            queue.put_nowait((index, first))
        tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(self.streams)]
        try:
            remaining = len(tasks)
            while remaining:
                index, item = await queue.get()
                if item is done:
                    remaining -= 1
                elif isinstance(item, Exception):
                    raise item
                else:
                    yield index, item
        finally:
            for task in tasks:
                task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*tasks, return_exceptions=True)
