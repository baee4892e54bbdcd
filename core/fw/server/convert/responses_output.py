"""A parsed assistant turn as a Responses API response and its semantic stream events.

``OutputBuilder`` turns the parser's deltas into output items (reasoning, message,
function_call) and returns, for each step, the events that build them, in the order
OpenAI sends them: an item is added, its content part added, its deltas, then the
part's and the item's ``done`` events before the next item opens. The non-streamed
response is built by the same code with the events dropped, so both always agree.
"""

from __future__ import annotations

import copy
import itertools
import time
import uuid
from typing import Any, AsyncIterator

from fw.parsing.messages import DeltaMessage, ToolCallDelta
from fw.server.convert.common import split_open_call
from fw.server.errors import ApiError
from fw.server.protocol.responses import (
    IncompleteDetails, InputTokensDetails, OutputTokensDetails, ResponseError, ResponseObject, ResponsesRequest,
    ResponseUsage,
)
from fw.server.sse import event
from fw.server.turn import Turn

Event = dict[str, Any]


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class OutputBuilder:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        #: output index of the item being written, and the tool call it holds (if one)
        self.open: int | None = None
        self.open_call: int | None = None

    def add(self, delta: DeltaMessage) -> list[Event]:
        events: list[Event] = []
        open_call, calls = split_open_call(delta.tool_calls)
        for call in open_call:
            events += self._call(call)
        if delta.reasoning:
            events += self._text("reasoning", delta.reasoning)
        if delta.content:
            events += self._text("message", delta.content)
        for call in calls:
            events += self._call(call)
        return events

    def finish(self, status: str) -> list[Event]:
        """Close the last item with ``status``; an answer with no item gets an empty message."""
        events = [] if self.items else self._open(self._message_item())
        return events + self._close(status)

    # -- items ----------------------------------------------------------------------

    @staticmethod
    def _message_item() -> dict[str, Any]:
        return {"id": _new_id("msg"), "type": "message", "role": "assistant", "status": "in_progress",
                "content": [], "_part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}

    @staticmethod
    def _reasoning_item() -> dict[str, Any]:
        return {"id": _new_id("rs"), "type": "reasoning", "summary": [], "status": "in_progress",
                "content": [], "_part": {"type": "reasoning_text", "text": ""}}

    def _current(self, kind: str) -> dict[str, Any] | None:
        item = self.items[self.open] if self.open is not None else None
        return item if item is not None and item["type"] == kind else None

    def _open(self, item: dict[str, Any]) -> list[Event]:
        events = self._close("completed")
        part = item.pop("_part", None)
        self.items.append(item)
        self.open = index = len(self.items) - 1
        events.append({"type": "response.output_item.added", "output_index": index, "item": copy.deepcopy(item)})
        if part is not None:
            item["content"].append(part)
            events.append({"type": "response.content_part.added", "item_id": item["id"], "output_index": index,
                           "content_index": 0, "part": copy.deepcopy(part)})
        return events

    def _text(self, kind: str, text: str) -> list[Event]:
        item = self._current(kind)
        events: list[Event] = []
        if item is None:
            events = self._open(self._message_item() if kind == "message" else self._reasoning_item())
            item = self.items[self.open]
        item["content"][0]["text"] += text
        name = "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta"
        delta: Event = {"type": name, "item_id": item["id"], "output_index": self.open, "content_index": 0,
                        "delta": text}
        if kind == "message":
            delta["logprobs"] = []
        return events + [delta]

    def _call(self, call: ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        if call.id is not None:  # a new call
            events = self._open({"id": _new_id("fc"), "type": "function_call", "call_id": call.id,
                                 "name": call.name, "arguments": "", "status": "in_progress"})
            self.open_call = call.index
        item = self._current("function_call")
        if item is None or self.open_call != call.index or not call.arguments:
            return events
        item["arguments"] += call.arguments
        return events + [{"type": "response.function_call_arguments.delta", "item_id": item["id"],
                          "output_index": self.open, "delta": call.arguments}]

    def _close(self, status: str) -> list[Event]:
        if self.open is None:
            return []
        index, item = self.open, self.items[self.open]
        self.open = self.open_call = None
        item["status"] = status
        where = {"item_id": item["id"], "output_index": index}
        events: list[Event] = []
        if item["type"] == "function_call":
            events.append({"type": "response.function_call_arguments.done", **where, "name": item["name"],
                           "arguments": item["arguments"]})
        else:
            part = item["content"][0]
            if item["type"] == "message":
                events.append({"type": "response.output_text.done", **where, "content_index": 0,
                               "text": part["text"], "logprobs": []})
            else:
                events.append({"type": "response.reasoning_text.done", **where, "content_index": 0,
                               "text": part["text"]})
            events.append({"type": "response.content_part.done", **where, "content_index": 0,
                           "part": copy.deepcopy(part)})
        events.append({"type": "response.output_item.done", "output_index": index, "item": copy.deepcopy(item)})
        return events


def _response_error(error: ApiError) -> ResponseError:
    """OpenAI's codes for a failed response: what went wrong, by whose fault; fw's own
    code stays in the message."""
    code = ("rate_limit_exceeded" if error.status in (429, 503) else
            "server_error" if error.status >= 500 else "invalid_prompt")
    return ResponseError(code=code, message=f"{error.message} ({error.code})" if error.code else error.message)


def response_object(body: ResponsesRequest, *, response_id: str, model: str, created_at: int, status: str,
                    store: bool, output: list[dict[str, Any]] | None = None, usage: ResponseUsage | None = None,
                    error: ApiError | None = None) -> ResponseObject:
    """The response object, echoing what the request set."""
    reasoning = body.reasoning.model_dump(exclude={"generate_summary"}) if body.reasoning is not None else None
    text_format = body.text.format if body.text is not None and body.text.format is not None else None
    return ResponseObject(
        # OpenAI sets completed_at only on a completed response (not an incomplete, failed or cancelled one)
        id=response_id, created_at=created_at, completed_at=int(time.time()) if status == "completed" else None,
        status=status,
        model=model, output=output or [], usage=usage,
        incomplete_details=IncompleteDetails(reason="max_output_tokens") if status == "incomplete" else None,
        error=_response_error(error) if error else None,
        instructions=body.instructions, metadata=body.metadata, temperature=body.temperature, top_p=body.top_p,
        max_output_tokens=body.max_output_tokens, tools=body.tools or [], tool_choice=body.tool_choice or "auto",
        parallel_tool_calls=body.parallel_tool_calls is not False,
        text={"format": text_format.model_dump(by_alias=True, exclude_none=True) if text_format
              else {"type": "text"}},
        reasoning=reasoning, previous_response_id=body.previous_response_id, store=store,
        background=bool(body.background), truncation=body.truncation or "disabled", user=body.user,
        safety_identifier=body.safety_identifier, prompt_cache_key=body.prompt_cache_key,
        service_tier=body.service_tier,
    )


class ResponseView:
    """One turn as a response object, streamed as events or collected whole."""

    def __init__(self, body: ResponsesRequest, turn: Turn | None, *, response_id: str, model: str, store: bool):
        self.body, self.turn = body, turn
        self.fields = {"response_id": response_id, "model": model, "created_at": int(time.time()), "store": store}
        self.builder = OutputBuilder()
        self._sequence = itertools.count()
        self.final: ResponseObject | None = None

    def snapshot(self, status: str, **fields: Any) -> ResponseObject:
        return response_object(self.body, status=status, **self.fields, **fields)

    def _finish(self) -> list[Event]:
        status = "incomplete" if self.turn.choice.finish_reason == "length" else "completed"
        events = self.builder.finish(status)
        usage = self.turn.usage()
        self.final = self.snapshot(status, output=self.builder.items, usage=ResponseUsage(
            input_tokens=usage.input_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=usage.cached_tokens,
                                                    cache_write_tokens=usage.cache_write_tokens),
            output_tokens=usage.output_tokens,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
            total_tokens=usage.input_tokens + usage.output_tokens))
        return events

    async def collect(self) -> ResponseObject:
        async for delta in self.turn.deltas():
            self.builder.add(delta)
        self._finish()
        return self.final

    def _event(self, payload: Event) -> str:
        payload["sequence_number"] = next(self._sequence)
        return event(payload, payload["type"])

    async def stream(self) -> AsyncIterator[str]:
        started = self.snapshot("in_progress").model_dump(mode="json")
        yield self._event({"type": "response.created", "response": started})
        yield self._event({"type": "response.in_progress", "response": started})
        async for delta in self.turn.deltas():
            for item in self.builder.add(delta):
                yield self._event(item)
        for item in self._finish():
            yield self._event(item)
        kind = "response.incomplete" if self.final.status == "incomplete" else "response.completed"
        yield self._event({"type": kind, "response": self.final.model_dump(mode="json")})

    def error_events(self, error: ApiError) -> list[str]:
        """A failure after the stream started: an ``error`` event, then ``response.failed``."""
        failed = self.snapshot("failed", output=self.builder.items, error=error).model_dump(mode="json")
        return [self._event({"type": "error", "code": error.code, "message": error.message, "param": error.param}),
                self._event({"type": "response.failed", "response": failed})]
