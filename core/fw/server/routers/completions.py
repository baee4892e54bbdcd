"""POST /v1/completions."""

from __future__ import annotations

import time
from typing import AsyncIterator

from fastapi import APIRouter, Depends, Request

from fw.errors import InvalidParameterError, NotSupportedError
from fw.server.accumulate import Accumulator, Choice, prompt_logprobs_json
from fw.server.beam_search import BeamJob, BeamOutputs
from fw.server.context import ServerContext, base_request_id, get_context
from fw.server.generation import Outputs, Submission
from fw.server.json_body import StrictJSONRoute
from fw.server.logprobs import completion_logprobs, merge_completion_logprobs
from fw.server.pooling import require_task
from fw.server.preprocess import check_sequences, count_prompts
from fw.server.prompts import Prompt, completion_prompts
from fw.server.protocol.completions import (
    CompletionChoice, CompletionChunk, CompletionLogprobs, CompletionRequest, CompletionResponse,
)
from fw.server.response_options import response_options
from fw.server.routers import ERROR_RESPONSES, STREAM_RESPONSE
from fw.server.sampling import beam_search_params, reject_unsupported, sampling_params
from fw.server.sse import DONE, SSEResponse, event, guard_stream, until_disconnected

router = APIRouter(tags=["OpenAI"], route_class=StrictJSONRoute)


@router.post("/v1/completions", response_model=CompletionResponse, responses={**ERROR_RESPONSES, **STREAM_RESPONSE})
async def create_completion(body: CompletionRequest, request: Request,
                            ctx: ServerContext = Depends(get_context)):
    """Complete one prompt or a batch of prompts (OpenAI's legacy completions API)."""
    served = ctx.resolve_model(body.model)
    require_task(ctx, "generate", "/v1/completions")
    if body.suffix is not None:
        raise NotSupportedError("suffix is not supported (fill-in-the-middle is not implemented)",
                                param="suffix")
    if body.stream_options is not None and not body.stream:
        raise InvalidParameterError("stream_options", "only allowed when stream is true")
    reject_unsupported(body)
    check_sequences(ctx, count_prompts(body.prompt), body.n)
    prompts = await completion_prompts(ctx, body.prompt, body.add_special_tokens, truncate=body.truncate_prompt_tokens)
    request_id = f"cmpl-{base_request_id(request, body.request_id)}"
    prompt_logprobs = body.prompt_logprobs
    if body.echo and body.logprobs is not None and prompt_logprobs is None:
        prompt_logprobs = body.logprobs
    ids = [request_id if len(prompts) == 1 else f"{request_id}-{i}" for i in range(len(prompts))]
    if body.use_beam_search:
        beams = beam_search_params(body, max_tokens=body.max_tokens, logprobs=body.logprobs,
                                   prompt_logprobs=prompt_logprobs)
        outputs = BeamOutputs(ctx, [BeamJob(prompt, beams, id_, lora_request=served.lora)
                                    for prompt, id_ in zip(prompts, ids)], body.priority)
    else:
        params = sampling_params(body, max_tokens=body.max_tokens, logprobs=body.logprobs,
                                 prompt_logprobs=prompt_logprobs)
        outputs = Outputs(ctx, [Submission(prompt, params, id_, lora_request=served.lora)
                                for prompt, id_ in zip(prompts, ids)], body.priority)
    await until_disconnected(request, outputs.start())
    view = CompletionView(ctx, body, served.name, request_id, outputs.admitted_prompts())
    if body.stream:
        return SSEResponse(guard_stream(view.stream(outputs),
                                        log_error_stack=ctx.config.frontend.log_error_stack))
    return await until_disconnected(request, view.collect(outputs))


class CompletionView:
    """Turns the engine's outputs into the completions API's response or chunks."""

    def __init__(self, ctx: ServerContext, body: CompletionRequest, model: str, request_id: str,
                 prompts: list[Prompt]):
        self.ctx, self.body, self.model, self.id = ctx, body, model, request_id
        self.created = int(time.time())
        self.acc = Accumulator([p.token_ids for p in prompts], body.n)
        self.prompt_texts = [p.text if p.text is not None else ctx.tokenizer.decode(p.token_ids)
                             if ctx.tokenizer is not None else "" for p in prompts]
        #: token ids in the choices: asked for, or all a server without a tokenizer can give
        self.ids = bool(body.return_token_ids) or ctx.tokenizer is None
        self.as_ids, self.details, self.include_usage, self.continuous_usage = response_options(
            ctx.config.frontend, body)

    def _echo_prefix(self, choice: Choice) -> tuple[str, CompletionLogprobs | None]:
        """The prompt text (and its logprobs) an echoed choice starts with. With logprobs, the
        request asked the engine for prompt logprobs too, which come with its first output."""
        text = self.prompt_texts[choice.prompt_index]
        if self.body.logprobs is None:
            return text, None
        info = self.acc.prompts[choice.prompt_index]
        return text, completion_logprobs(info.token_ids, info.logprobs, self.ctx.token_text, as_ids=self.as_ids)

    def _logprobs(self, token_ids: list[int], positions: list, offset: int) -> CompletionLogprobs | None:
        if self.body.logprobs is None:
            return None
        return completion_logprobs(token_ids, positions, self.ctx.token_text, as_ids=self.as_ids, offset=offset)

    def _prompt_logprobs(self, choice: Choice):
        if self.body.prompt_logprobs is None:
            return None
        return prompt_logprobs_json(self.acc.prompts[choice.prompt_index])

    def _ids(self, choice: Choice, token_ids: list[int], first: bool) -> dict:
        if not self.ids:
            return {}
        prompt = self.acc.prompts[choice.prompt_index].token_ids if first else None
        return {"prompt_token_ids": prompt, "token_ids": list(token_ids)}

    async def collect(self, outputs: Outputs | BeamOutputs) -> CompletionResponse:
        async for index, out in outputs:
            self.acc.add(index, out)
        choices = []
        for choice in self.acc.choices:
            text, offset, logprobs = choice.text, 0, None
            if self.body.echo:
                prefix, logprobs = self._echo_prefix(choice)
                text, offset = prefix + text, len(prefix)
            generated = self._logprobs(choice.token_ids, choice.logprobs, offset)
            if generated is not None:
                logprobs = merge_completion_logprobs(logprobs, generated) if logprobs else generated
            choices.append(CompletionChoice(
                index=choice.index, text=text, logprobs=logprobs, finish_reason=choice.finish_reason,
                stop_reason=choice.stop_reason, prompt_logprobs=self._prompt_logprobs(choice),
                **self._ids(choice, choice.token_ids, first=True)))
        return CompletionResponse(id=self.id, created=self.created, model=self.model, choices=choices,
                                  usage=self.acc.usage(details=self.details))

    async def stream(self, outputs: Outputs | BeamOutputs) -> AsyncIterator[str]:
        #: per choice, where its next token's text starts (text_offset), counted over the
        #: tokens' texts as in a whole response: the text streamed so far lags behind the
        #: tokens while the engine holds text back (what may start a stop string)
        offsets = [len(self.prompt_texts[c.prompt_index]) if self.body.echo else 0 for c in self.acc.choices]
        #: a step's tokens are sent even when their text is held back, if they or their
        #: logprobs were asked for
        per_token = self.ids or self.body.logprobs is not None
        async for index, out in outputs:
            for choice, delta in self.acc.add(index, out):
                first = not choice.streamed
                if (not delta.text and delta.finish_reason is None and not (first and self.body.echo)
                        and not (per_token and delta.token_ids)):
                    continue
                text, logprobs = delta.text, None
                if first and self.body.echo:
                    prefix, logprobs = self._echo_prefix(choice)
                    text = prefix + text
                generated = self._logprobs(delta.token_ids, delta.logprobs or [], offsets[choice.index])
                offsets[choice.index] += self.ctx.token_text.length(delta.token_ids)
                if generated is not None:
                    logprobs = merge_completion_logprobs(logprobs, generated) if logprobs else generated
                choice.streamed = True
                yield event(CompletionChunk(
                    id=self.id, created=self.created, model=self.model,
                    choices=[CompletionChoice(
                        index=choice.index, text=text, logprobs=logprobs,
                        finish_reason=delta.finish_reason, stop_reason=delta.stop_reason,
                        prompt_logprobs=self._prompt_logprobs(choice) if first else None,
                        **self._ids(choice, delta.token_ids, first))],
                    usage=self.acc.usage(details=self.details) if self.continuous_usage else None,
                ))
        if self.include_usage:
            yield event(CompletionChunk(id=self.id, created=self.created, model=self.model, choices=[],
                                        usage=self.acc.usage(details=self.details)))
        yield DONE
