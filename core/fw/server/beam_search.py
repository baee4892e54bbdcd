"""``use_beam_search`` on the completions and chat APIs: the asynchronous driver of
``fw.entrypoints.beam_search_state`` over the engine client.

As vLLM's serving beam search does, each step submits one single-token request per live
beam (``engine_stream``: the engine's admission step, request logging, metrics, an abort
when the client leaves), all of a step's at once, asking for the top 2 x width logprobs.
``BeamOutputs`` has the shape of ``fw.server.generation.Outputs``, so the completions and
chat views shape its answer as any other: ``start()`` runs every prompt's first step (a
refusal is still an HTTP error naming the API's parameter), iterating runs the rest and
yields each prompt's beams, best first, as one finished output whose choices are the
beams. A streamed request gets them when the search ends, as vLLM's chat stream does.
The request counts as in flight for the server's drain from its first step to its last,
and its later steps are not refused as new work while the server drains.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator

import anyio

from fw.engine.admission import output_budget
from fw.engine.detokenizer import TokenTexts
from fw.engine.outputs import RequestOutput
from fw.engine.sampling_params import BeamSearchParams, RequestOutputKind
from fw.entrypoints.beam_search_state import BeamSearch, candidate_count, check_candidates, step_params
from fw.errors import FwError
from fw.lora.request import LoRARequest
from fw.server.context import ServerContext
from fw.server.errors import api_param_names
from fw.server.generation import Submission, engine_stream
from fw.server.prompts import Prompt


@dataclass
class BeamJob:
    """One prompt's beam search, as its API asked for it."""

    prompt: Prompt
    params: BeamSearchParams
    request_id: str
    lora_request: LoRARequest | None = None
    #: special tokens the beams' text keeps (an output parser's markers)
    keep_special_ids: frozenset[int] = frozenset()
    #: the engine's parameter names -> this API's (``n`` for ``beam_width`` among them)
    param_names: dict[str, str] | None = None


class BeamOutputs:
    """The outputs of a beam-search request's prompts as ``(prompt_index, RequestOutput)``."""

    def __init__(self, ctx: ServerContext, jobs: list[BeamJob], priority: int):
        self.ctx, self.jobs, self.priority = ctx, jobs, priority
        info = ctx.model_info
        self.eos = tuple(info.eos_token_ids)
        self.texts = TokenTexts(ctx.tokenizer) if ctx.tokenizer is not None else None
        self.firsts: list[RequestOutput] = []
        self.searches: list[BeamSearch] = []
        self._tasks: list[asyncio.Task] = []
        self._in_flight = [f"{job.request_id}-beams" for job in jobs]

    def _names(self, job: BeamJob) -> dict[str, str]:
        return {"beam_width": "n", **(job.param_names or {})}

    def admitted_prompts(self) -> list[Prompt]:
        return [Prompt(first.prompt, list(first.prompt_token_ids)) for first in self.firsts]

    async def start(self) -> None:
        """Check every prompt's search, then run its first step; on failure, close all."""
        ctx, info = self.ctx, self.ctx.model_info
        budgets = []
        for job in self.jobs:
            with api_param_names(self._names(job)):
                check_candidates(job.params, self.eos, info.max_logprobs)
                truncate = job.params.truncate_prompt_tokens
                length = len(job.prompt.token_ids) if truncate is None else min(len(job.prompt.token_ids), truncate)
                budgets.append(output_budget(info.max_model_len, length, job.params.max_tokens, info.max_new_tokens))
        ctx.lifecycle.admit()
        for name in self._in_flight:
            ctx.lifecycle.started(name)
        try:
            steps = await _all(self._step(job, 0, [job.prompt]) for job in self.jobs)
            self.firsts = [outputs[0] for outputs in steps]
            for job, first, budget in zip(self.jobs, self.firsts, budgets):
                with api_param_names(self._names(job)):
                    search = BeamSearch(first.prompt_token_ids, job.params, max_tokens=budget,
                                        eos_token_ids=self.eos, texts=self.texts,
                                        keep_special_ids=job.keep_special_ids)
                search.advance([first.outputs[0].logprobs[0]])
                self.searches.append(search)
        except BaseException:
            await self.aclose()
            raise

    async def _step(self, job: BeamJob, step: int, prompts: list[Prompt]) -> list[RequestOutput]:
        """One request per prompt (the first step: the prompt alone), run together; each
        one's final output."""
        params = step_params(job.params, candidate_count(job.params, self.eos), first=step == 0,
                             output_kind=RequestOutputKind.DELTA)
        subs = [Submission(prompt, params, f"{job.request_id}-beam{step}-{i}", lora_request=job.lora_request,
                           param_names=self._names(job)) for i, prompt in enumerate(prompts)]
        return await _all(_last(engine_stream(self.ctx, sub, self.priority, admit=False)) for sub in subs)

    async def _search(self, index: int) -> tuple[int, RequestOutput]:
        job, search, first = self.jobs[index], self.searches[index], self.firsts[index]
        step = 1
        while not search.done:
            outputs = await self._step(job, step, [Prompt(None, ids) for ids in search.pending()])
            search.advance([out.outputs[0].logprobs[0] for out in outputs])
            step += 1
        return index, RequestOutput(
            request_id=job.request_id, prompt=first.prompt, prompt_token_ids=search.prompt,
            outputs=search.completions(with_logprobs=job.params.logprobs is not None), finished=True,
            prompt_logprobs=first.prompt_logprobs, num_cached_tokens=first.num_cached_tokens,
            lora_name=first.lora_name)

    async def __aiter__(self) -> AsyncIterator[tuple[int, RequestOutput]]:
        try:
            self._tasks = [asyncio.ensure_future(self._search(i)) for i in range(len(self.jobs))]
            for next_done in asyncio.as_completed(self._tasks):
                yield await next_done
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Cancel the searches (their steps' requests are aborted) and leave the drain's count."""
        for task in self._tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for name in self._in_flight:
            self.ctx.lifecycle.ended(name)


async def _last(stream: AsyncIterator[RequestOutput]) -> RequestOutput:
    """A one-token request's final output (its stream is closed, aborting it, if cut short)."""
    last = None
    try:
        async for out in stream:
            last = out
    finally:
        await stream.aclose()
    if last is None or not last.finished or not last.outputs or last.outputs[0].logprobs is None:
        raise FwError("a beam-search step ended without its logprobs")
    return last


async def _all(coroutines) -> list:
    """Run together; the first failure cancels the rest and is raised."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(*tasks, return_exceptions=True)
        raise
