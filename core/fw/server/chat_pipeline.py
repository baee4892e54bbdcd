"""The chat pipeline every conversational API shares: render -> admit -> start.

The chat completions, Responses and Anthropic Messages routes differ only in shape:
each turns its request into a ``ChatCompletionRequest`` (its converter's job), runs it
through here, and shapes the outputs its own way. So templates, tool planning, parsers,
structured outputs, sampling and admission have one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from fw.errors import InvalidParameterError
from fw.parsing.pipeline import OutputParser
from fw.server.beam_search import BeamJob, BeamOutputs
from fw.server.chat_prompt import message_dicts
from fw.server.context import ServedModel, ServerContext
from fw.server.errors import api_param_names
from fw.server.generation import Outputs, Submission
from fw.server.pooling import require_task
from fw.server.preprocess import check_sequences, render, tokenize
from fw.server.prompts import Prompt
from fw.server.protocol.chat import ChatCompletionRequest
from fw.server.sampling import beam_search_params, reject_unsupported, sampling_params
from fw.server.sse import until_disconnected
from fw.server.tools import ToolPlan, plan_tools


@dataclass
class RenderedChat:
    """A conversation as the model will read it."""

    plan: ToolPlan
    #: the messages as the client sent them
    messages: list[dict[str, Any]]
    text: str
    #: the prompt as tokenized here; after ``start_chat``, as the engine admitted it (truncated)
    prompt: Prompt


@dataclass
class ChatRun:
    """A conversation admitted by the engine, its first outputs already in."""

    served: ServedModel
    request_id: str
    rendered: RenderedChat
    #: one output parser per choice (None: the text is the content as it is)
    parsers: list[OutputParser | None]
    #: the engine's outputs (``BeamOutputs`` for use_beam_search: one finished output)
    outputs: Outputs | BeamOutputs


async def render_chat_request(ctx: ServerContext, body: ChatCompletionRequest) -> RenderedChat:
    """Tools planned, messages rendered by the chat template, prompt tokenized (both on
    the preprocess threads, the text checked against the context's character bound in
    between)."""
    require_task(ctx, "generate", "the chat APIs (/v1/chat/completions, /v1/responses, /v1/messages)")
    frontend = ctx.config.frontend
    plan = plan_tools(body.tools, body.tool_choice, parallel_tool_calls=body.parallel_tool_calls,
                      auto_enabled=frontend.enable_auto_tool_choice, parser=frontend.tool_call_parser,
                      exclude_when_none=frontend.exclude_tools_when_tool_choice_none)
    check_sequences(ctx, 1, body.n)
    messages = message_dicts(body)
    extra = {"reasoning_effort": body.reasoning_effort} if body.reasoning_effort else None
    text = await render(ctx, body, messages, extra, tools=plan.template_tools)
    ids = await tokenize(ctx, text, body.add_special_tokens, param="messages", truncate=body.truncate_prompt_tokens)
    return RenderedChat(plan, messages, text, Prompt(text, ids))


async def start_chat(ctx: ServerContext, body: ChatCompletionRequest, request: Request | None,
                     request_id: str) -> ChatRun:
    """Render, submit and start ``body``; waits for the first outputs, so a refusal by the
    engine's admission step is still an HTTP error, naming the chat API's parameter.
    ``request`` None: not tied to a client connection (a background response)."""
    served = ctx.resolve_model(body.model)
    reject_unsupported(body)
    top_n = (body.top_logprobs or 0) if body.logprobs else None
    rendered = await render_chat_request(ctx, body)
    prompt, plan = rendered.prompt, rendered.plan
    asked, param = ((body.max_completion_tokens, "max_completion_tokens")
                    if body.max_completion_tokens is not None else (body.max_tokens, "max_tokens"))
    names = {"prompt": "messages", "logprobs": "top_logprobs", "max_tokens": param}
    parsers = [ctx.parsing.for_choice(plan) for _ in range(body.n)]
    keep = ctx.parsing.keep_special_ids(parsers[0])
    if body.use_beam_search:
        with api_param_names(names):
            beams = beam_search_params(body, max_tokens=asked, logprobs=top_n, prompt_logprobs=body.prompt_logprobs)
        if plan.constraint is not None:
            raise InvalidParameterError(
                "tool_choice", f'"{plan.mode}" tool choice is enforced with structured outputs, which cannot be '
                               "used with use_beam_search")
        outputs = BeamOutputs(ctx, [BeamJob(prompt, beams, request_id, lora_request=served.lora,
                                            keep_special_ids=keep, param_names=names)], body.priority)
    else:
        with api_param_names(names):
            params = sampling_params(body, max_tokens=asked, logprobs=top_n, prompt_logprobs=body.prompt_logprobs)
        if plan.constraint is not None:
            if params.structured_outputs is not None:
                raise InvalidParameterError(
                    "tool_choice", f'"{plan.mode}" tool choice is enforced with structured outputs and cannot be '
                                   "combined with response_format or guided decoding")
            params.structured_outputs = plan.constraint
        submission = Submission(
            prompt, params, request_id, lora_request=served.lora, keep_special_ids=keep,
            reasoning_end_ids=ctx.parsing.reasoning_end_ids(rendered.text) if params.structured_outputs else None,
            param_names=names)
        outputs = Outputs(ctx, [submission], body.priority)
    if request is None:
        await outputs.start()
    else:
        await until_disconnected(request, outputs.start())
    rendered.prompt = outputs.admitted_prompts()[0]
    return ChatRun(served, request_id, rendered, parsers, outputs)
