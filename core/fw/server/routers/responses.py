"""POST /v1/responses (OpenAI's Responses API), GET and DELETE /v1/responses/{id},
POST /v1/responses/{id}/cancel.

A request is converted into the chat pipeline's request (``convert.responses_request``),
run by the chat pipeline and shaped into a response or its events
(``convert.responses_output``); the store and background runs are
``fw.server.responses_service``'s.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from fw.errors import FwError, InvalidParameterError, NotSupportedError
from fw.server.chat_pipeline import render_chat_request, start_chat
from fw.server.context import ServerContext, base_request_id, get_context
from fw.server.convert.responses_output import ResponseView
from fw.server.convert.responses_request import chat_request_of, input_items
from fw.server.errors import from_exception, log_error, rename_param
from fw.server.json_body import StrictJSONRoute
from fw.server.protocol.chat import ChatCompletionRequest
from fw.server.protocol.responses import (
    DeletedResponse,
    ResponseObject,
    ResponsesRequest,
)
from fw.server.routers import ERROR_RESPONSES, stream_response
from fw.server.sse import SSEResponse, guard_stream, until_disconnected
from fw.server.turn import Turn

router = APIRouter(tags=["OpenAI Responses"], route_class=StrictJSONRoute)

#: the chat pipeline's parameter names as the Responses API calls them, for errors
PARAM_NAMES = {"max_completion_tokens": "max_output_tokens", "max_tokens": "max_output_tokens",
               "messages": "input", "prompt": "input", "response_format": "text.format",
               "reasoning_effort": "reasoning.effort"}


@router.post("/v1/responses", response_model=ResponseObject, responses={
    **ERROR_RESPONSES, **stream_response("typed `event:` lines with increasing `sequence_number`s, ending with "
                                         "`response.completed`, `response.incomplete` or `response.failed`")})
async def create_response(body: ResponsesRequest, request: Request, ctx: ServerContext = Depends(get_context)):
    """Answer input items (after the conversation previous_response_id names)."""
    service = ctx.responses
    store = body.store is not False and service.store.enabled
    if body.background and not store:
        raise InvalidParameterError("background", "needs store=true (and a server whose store is enabled)")
    if body.background and body.stream:
        raise NotSupportedError("background responses cannot be streamed; poll GET /v1/responses/{id}",
                                param="stream")
    history = service.history(body.previous_response_id)
    response_id = f"resp_{base_request_id(request, body.request_id)}"
    conversation = history + input_items(body)
    try:
        chat = chat_request_of(body, history)
        if body.background:
            return await _start_background(ctx, body, chat, response_id, conversation)
        run = await start_chat(ctx, chat, request, response_id)
    except FwError as exc:
        raise rename_param(exc, PARAM_NAMES) from None
    view = ResponseView(body, Turn(run, ctx, parallel_tool_calls=body.parallel_tool_calls is not False),
                        response_id=response_id, model=run.served.name, store=store)
    if body.stream:
        async def events():
            async for item in view.stream():
                yield item
            if store:
                service.keep(view.final, conversation)

        return SSEResponse(guard_stream(events(), log_error_stack=ctx.config.frontend.log_error_stack,
                                        error_events=view.error_events))
    response = await until_disconnected(request, view.collect())
    if store:
        service.keep(response, conversation)
    return response


async def _start_background(ctx: ServerContext, body: ResponsesRequest, chat: ChatCompletionRequest,
                            response_id: str, conversation: list[dict[str, Any]]) -> ResponseObject:
    """Check what can be checked now (model, template, tools), store a queued response
    and run the rest as a task."""
    served = ctx.resolve_model(chat.model)
    await render_chat_request(ctx, chat)
    service = ctx.responses
    view = ResponseView(body, None, response_id=response_id, model=served.name, store=True)

    def save(response: ResponseObject) -> None:
        service.keep(response, conversation)

    async def work() -> None:
        try:
            run = await start_chat(ctx, chat, None, response_id)
            view.turn = Turn(run, ctx, parallel_tool_calls=body.parallel_tool_calls is not False)
            save(view.snapshot("in_progress"))
            save(await view.collect())
        except Exception as exc:  # noqa: BLE001 - stored as the response's error, as a 4xx/5xx would be sent
            error = from_exception(rename_param(exc, PARAM_NAMES) if isinstance(exc, FwError) else exc)
            log_error(exc, error, stack=ctx.config.frontend.log_error_stack)
            save(view.snapshot("failed", error=error))

    queued = view.snapshot("queued")
    save(queued)
    service.launch(response_id, work)
    return queued


@router.get("/v1/responses/{response_id}", response_model=ResponseObject, responses=ERROR_RESPONSES)
async def retrieve_response(response_id: str, stream: bool = False, ctx: ServerContext = Depends(get_context)):
    """A stored response (a background one as it stands now)."""
    if stream:
        raise NotSupportedError("streaming a stored response is not supported", param="stream")
    return ctx.responses.get(response_id)


@router.delete("/v1/responses/{response_id}", response_model=DeletedResponse, responses=ERROR_RESPONSES)
async def delete_response(response_id: str, ctx: ServerContext = Depends(get_context)) -> DeletedResponse:
    ctx.responses.delete(response_id)
    return DeletedResponse(id=response_id)


@router.post("/v1/responses/{response_id}/cancel", response_model=ResponseObject, responses=ERROR_RESPONSES)
async def cancel_response(response_id: str, ctx: ServerContext = Depends(get_context)):
    """Stop a background response."""
    return await ctx.responses.cancel(response_id)
