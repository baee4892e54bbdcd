"""POST /v1/chat/completions."""

from __future__ import annotations

import time
from typing import Any, AsyncIterator

from fastapi import APIRouter, Depends, Request

from fw.chat.content import final_text
from fw.errors import InvalidParameterError, NotSupportedError
from fw.parsing.messages import ToolCallDelta
from fw.parsing.pipeline import OutputParser
from fw.server.accumulate import Accumulator, Choice, prompt_logprobs_json
from fw.server.beam_search import BeamOutputs
from fw.server.chat_parsing import feed_parser
from fw.server.chat_pipeline import start_chat
from fw.server.context import ServerContext, base_request_id, get_context
from fw.server.generation import Outputs
from fw.server.json_body import StrictJSONRoute
from fw.server.logprobs import chat_logprobs
from fw.server.prompts import Prompt
from fw.server.protocol.chat import (
    ChatChoice, ChatChoiceLogprobs, ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse,
    ChatResponseMessage, ChatStreamChoice, DeltaMessage,
)
from fw.server.response_options import response_options
from fw.server.routers import ERROR_RESPONSES, STREAM_RESPONSE
from fw.server.sse import DONE, SSEResponse, event, guard_stream, until_disconnected

router = APIRouter(tags=["OpenAI"], route_class=StrictJSONRoute)

#: OpenAI features fw does not have: refused when set, rather than silently ignored
_UNSUPPORTED = ("audio", "prediction", "web_search_options", "functions", "function_call", "verbosity")


def _reject_unsupported_chat(body: ChatCompletionRequest) -> None:
    for name in _UNSUPPORTED:
        if getattr(body, name) is not None:
            raise NotSupportedError(f"{name} is not supported by this server", param=name)
    if body.modalities is not None and body.modalities != ["text"]:
        raise NotSupportedError("only the text modality is supported", param="modalities")
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidParameterError("top_logprobs", "requires logprobs=true")
    if body.stream_options is not None and not body.stream:
        raise InvalidParameterError("stream_options", "only allowed when stream is true")


@router.post("/v1/chat/completions", response_model=ChatCompletionResponse,
             responses={**ERROR_RESPONSES, **STREAM_RESPONSE})
async def create_chat_completion(body: ChatCompletionRequest, request: Request,
                                 ctx: ServerContext = Depends(get_context)):
    """Answer a conversation, rendered into a prompt by the model's chat template."""
    _reject_unsupported_chat(body)
    request_id = f"chatcmpl-{base_request_id(request, body.request_id)}"
    run = await start_chat(ctx, body, request, request_id)
    outputs = run.outputs
    view = ChatView(ctx, body, run.served.name, request_id, run.rendered.prompt, run.rendered.messages,
                    run.parsers)
    if body.stream:
        return SSEResponse(guard_stream(view.stream(outputs),
                                        log_error_stack=ctx.config.frontend.log_error_stack))
    return await until_disconnected(request, view.collect(outputs))


def _tool_call_json(call: ToolCallDelta) -> dict[str, Any]:
    """One streamed tool-call delta in OpenAI's shape (first one with id, type, name: the
    parser contract, ``fw.parsing.messages.merge_deltas``, has the first carry all three)."""
    function = {k: v for k, v in (("name", call.name), ("arguments", call.arguments)) if v is not None}
    entry: dict[str, Any] = {"index": call.index, "function": function}
    if call.id is not None:
        entry.update(id=call.id, type=call.type)
    return entry


def _finish_reason(reason: str | None, called: bool) -> str | None:
    return "tool_calls" if called and reason == "stop" else reason


class ChatView:
    """Turns the engine's outputs into the chat API's response or chunks."""

    def __init__(self, ctx: ServerContext, body: ChatCompletionRequest, model: str, request_id: str,
                 prompt: Prompt, messages: list[dict[str, Any]], parsers: list[OutputParser | None]):
        self.ctx, self.body, self.model, self.id = ctx, body, model, request_id
        #: one output parser per choice (None: the text is the content as it is)
        self.parsers = parsers
        self.called = [False] * len(parsers)
        self.created = int(time.time())
        self.acc = Accumulator([prompt.token_ids], body.n)
        self.role = ctx.response_role(messages, body.add_generation_prompt)
        last = messages[-1]
        self.echo = final_text(last) if body.echo and last.get("role") == self.role else ""
        self.as_ids, self.details, self.include_usage, self.continuous_usage = response_options(
            ctx.config.frontend, body)

    def _logprobs(self, token_ids: list[int], positions: list) -> ChatChoiceLogprobs | None:
        if not self.body.logprobs:
            return None
        return ChatChoiceLogprobs(content=chat_logprobs(
            token_ids, positions, self.ctx.token_text, top_n=self.body.top_logprobs or 0, as_ids=self.as_ids))

    def _prompt_logprobs(self):
        if self.body.prompt_logprobs is None:
            return None
        return prompt_logprobs_json(self.acc.prompts[0])

    async def collect(self, outputs: Outputs | BeamOutputs) -> ChatCompletionResponse:
        async for index, out in outputs:
            self.acc.add(index, out)
        choices = [
            ChatChoice(index=c.index, message=self._message(c), logprobs=self._logprobs(c.token_ids, c.logprobs),
                       finish_reason=_finish_reason(c.finish_reason, self.called[c.index]),
                       stop_reason=c.stop_reason)
            for c in self.acc.choices
        ]
        return ChatCompletionResponse(id=self.id, created=self.created, model=self.model, choices=choices,
                                      usage=self.acc.usage(details=self.details),
                                      prompt_logprobs=self._prompt_logprobs())

    def _message(self, choice: Choice) -> ChatResponseMessage:
        parser = self.parsers[choice.index]
        if parser is None:
            return ChatResponseMessage(role=self.role, content=self.echo + choice.text)
        parsed = parser.parse(choice.text)
        self.called[choice.index] = bool(parsed.tool_calls)
        content = self.echo + (parsed.content or "")
        return ChatResponseMessage(
            role=self.role, content=content or (None if parsed.tool_calls else ""),
            reasoning_content=parsed.reasoning, reasoning=parsed.reasoning,
            tool_calls=[{"id": c.id, "type": c.type, "function": {"name": c.name, "arguments": c.arguments}}
                        for c in parsed.tool_calls],
        )

    def _delta(self, choice: Choice, text: str, final: bool) -> DeltaMessage:
        parser = self.parsers[choice.index]
        if parser is None:
            return DeltaMessage(content=text or None)
        parsed = feed_parser(parser, text, final)
        if parsed.tool_calls:
            self.called[choice.index] = True
        return DeltaMessage(content=parsed.content, reasoning_content=parsed.reasoning, reasoning=parsed.reasoning,
                            tool_calls=[_tool_call_json(c) for c in parsed.tool_calls] or None)

    def _chunk(self, choice: Choice, delta: DeltaMessage, **fields: Any) -> str:
        usage = self.acc.usage(details=self.details) if self.continuous_usage else None
        return event(ChatCompletionChunk(
            id=self.id, created=self.created, model=self.model,
            choices=[ChatStreamChoice(index=choice.index, delta=delta, **fields)], usage=usage))

    async def stream(self, outputs: Outputs | BeamOutputs) -> AsyncIterator[str]:
        for choice in self.acc.choices:
            yield self._chunk(choice, DeltaMessage(role=self.role, content=""))
            if self.echo:
                yield self._chunk(choice, DeltaMessage(content=self.echo))
        async for index, out in outputs:
            for choice, delta in self.acc.add(index, out):
                # a step's logprobs go out with it, also when its text is held back (by the
                # engine: what may start a stop string; or by a parser)
                has_logprobs = bool(self.body.logprobs and delta.token_ids)
                if not delta.text and delta.finish_reason is None and not has_logprobs:
                    continue
                message = self._delta(choice, delta.text, final=delta.finish_reason is not None)
                if (not (message.content or message.reasoning or message.tool_calls or has_logprobs)
                        and delta.finish_reason is None):
                    continue  # the parser is holding this text back
                yield self._chunk(
                    choice, message, logprobs=self._logprobs(delta.token_ids, delta.logprobs or []),
                    finish_reason=_finish_reason(delta.finish_reason, self.called[choice.index]),
                    stop_reason=delta.stop_reason)
        if self.include_usage:
            yield event(ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[],
                                            usage=self.acc.usage(details=self.details)))
        yield DONE
