"""POST /v1/messages and POST /v1/messages/count_tokens (Anthropic's Messages API).

A request is converted into the chat pipeline's request (``convert.messages_request``),
run by the chat pipeline and shaped into a message or its events
(``convert.messages_output``). Errors under these paths have Anthropic's shape
(``fw.server.errors``), and ``x-api-key`` is accepted beside a Bearer token.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from fw.errors import FwError
from fw.server.chat_pipeline import render_chat_request, start_chat
from fw.server.context import ServerContext, base_request_id, get_context
from fw.server.convert.messages_output import MessageView, error_events, new_message_id
from fw.server.convert.messages_request import chat_request_of
from fw.server.errors import rename_param
from fw.server.json_body import StrictJSONRoute
from fw.server.protocol.messages import (
    AnthropicErrorResponse,
    CountTokensRequest,
    MessageResponse,
    MessagesRequest,
    TokenCount,
)
from fw.server.routers import stream_response
from fw.server.sse import SSEResponse, guard_stream, until_disconnected
from fw.server.turn import Turn

router = APIRouter(tags=["Anthropic"], route_class=StrictJSONRoute)

#: the chat pipeline's parameter names as the Messages API calls them, for errors
PARAM_NAMES = {"max_completion_tokens": "max_tokens", "response_format": "output_config.format",
               "reasoning_effort": "output_config.effort", "stop": "stop_sequences", "prompt": "messages"}

ERRORS = {status: {"model": AnthropicErrorResponse, "description": text} for status, text in (
    (400, "Invalid or unsupported request."), (401, "Missing or wrong API key."), (404, "Unknown model."),
    (503, "Overloaded; retry after Retry-After seconds."))}


@router.post("/v1/messages", response_model=MessageResponse, responses={
    **ERRORS, **stream_response("Anthropic's `message_start` ... `message_stop` events, with `ping`s")})
async def create_message(body: MessagesRequest, request: Request, ctx: ServerContext = Depends(get_context)):
    """Answer a conversation in Anthropic's shape."""
    message_id = new_message_id(base_request_id(request, body.request_id))
    try:
        run = await start_chat(ctx, chat_request_of(body), request, message_id)
    except FwError as exc:
        raise rename_param(exc, PARAM_NAMES) from None
    parallel = not (body.tool_choice or {}).get("disable_parallel_tool_use")
    view = MessageView(body, Turn(run, ctx, parallel_tool_calls=parallel),
                       message_id=message_id, model=run.served.name)
    if body.stream:
        return SSEResponse(guard_stream(view.stream(), log_error_stack=ctx.config.frontend.log_error_stack,
                                        error_events=error_events))
    return await until_disconnected(request, view.collect())


@router.post("/v1/messages/count_tokens", response_model=TokenCount, responses=ERRORS)
async def count_tokens(body: CountTokensRequest, ctx: ServerContext = Depends(get_context)) -> TokenCount:
    """The prompt's token count: the input_tokens (plus cache reads) a message request
    with the same system, messages and tools would have."""
    try:
        ctx.resolve_model(body.model)
        rendered = await render_chat_request(ctx, chat_request_of(body))
    except FwError as exc:
        raise rename_param(exc, PARAM_NAMES) from None
    return TokenCount(input_tokens=len(rendered.prompt.token_ids))
