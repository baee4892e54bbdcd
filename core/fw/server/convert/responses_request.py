"""A Responses API request as the chat pipeline's request.

Items become chat messages: message items keep their role (``developer`` is read as
``system``, which is what open models' templates know); ``function_call`` items become
the ``tool_calls`` of an assistant message (consecutive calls, and a message item right
before them, make one assistant turn); ``function_call_output`` items become ``tool``
messages; a ``reasoning`` item is the ``reasoning_content`` of the assistant turn that
follows it (templates that show past reasoning read that field).
"""

from __future__ import annotations

from typing import Any

from fw.errors import InvalidParameterError, NotSupportedError
from fw.server.convert.common import check_fields, chat_request, function_tool, refuse_strict_under_auto
from fw.server.protocol.chat import ChatCompletionRequest
from fw.server.protocol.responses import ResponsesRequest

_TEXT_PARTS = {"input_text", "output_text", "text", "refusal"}
_ITEM_FIELDS = {
    "message": {"type", "role", "content", "id", "status", "phase"},
    "function_call": {"type", "call_id", "name", "arguments", "id", "status", "namespace", "caller"},
    "function_call_output": {"type", "call_id", "output", "id", "status", "name", "namespace", "caller"},
    "reasoning": {"type", "id", "summary", "content", "encrypted_content", "status"},
}
_ROLES = {"user", "assistant", "system", "developer"}
_TOOL_FIELDS = {"type", "name", "description", "parameters", "strict"}
#: fields copied to the chat request under the same name
_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
             "frequency_penalty", "seed", "stop", "ignore_eos", "min_tokens", "chat_template_kwargs",
             "priority", "parallel_tool_calls", "model")


def _text(content: Any, where: str) -> str | list[dict[str, str]]:
    """A message's or tool output's content: a string, or its text parts in chat's shape."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidParameterError("input", f"{where}: must be a string or a list of content parts")
    parts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            text = part.get("text", part.get("refusal"))
            if not isinstance(text, str):
                raise InvalidParameterError("input", f"{where}[{j}].text: required, a string")
            parts.append({"type": "text", "text": text})
        elif kind is None:
            raise InvalidParameterError("input", f"{where}[{j}]: must be an object with a 'type'")
        else:
            raise NotSupportedError(f"{where}[{j}]: '{kind}' content is not supported; this server takes "
                                    "text only", param="input")
    return parts


def _reasoning_text(item: dict[str, Any]) -> str:
    parts = item.get("content") or item.get("summary") or []
    return "".join(p.get("text", "") for p in parts if isinstance(p, dict))


class _Conversation:
    """Items appended in order; tracks the assistant turn that calls may join."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.reasoning: list[str] = []
        #: the last message is an assistant turn that further calls may join
        self.open_turn = False
        self.call_names: dict[str, str] = {}

    def _assistant(self) -> dict[str, Any]:
        if not self.open_turn:
            self.messages.append({"role": "assistant", "content": ""})
            self.open_turn = True
        turn = self.messages[-1]
        if self.reasoning:
            turn["reasoning_content"] = turn.get("reasoning_content", "") + "".join(self.reasoning)
            self.reasoning = []
        return turn

    def message(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role")
        if role not in _ROLES:
            raise InvalidParameterError("input", f"{where}.role: must be one of user, assistant, system, developer")
        content = _text(item.get("content"), f"{where}.content")
        if role == "assistant":
            self.open_turn = False
            self._assistant()["content"] = content
            return
        self.open_turn = False
        self.messages.append({"role": "system" if role == "developer" else role, "content": content})

    def call(self, item: dict[str, Any], where: str) -> None:
        call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
        for field, value in (("call_id", call_id), ("name", name), ("arguments", arguments)):
            if not isinstance(value, str):
                raise InvalidParameterError("input", f"{where}.{field}: required, a string")
        self.call_names[call_id] = name
        turn = self._assistant()
        turn.setdefault("tool_calls", []).append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})

    def output(self, item: dict[str, Any], where: str) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str):
            raise InvalidParameterError("input", f"{where}.call_id: required, a string")
        if "output" not in item:
            raise InvalidParameterError("input", f"{where}.output: required")
        self.open_turn = False
        message = {"role": "tool", "tool_call_id": call_id, "content": _text(item["output"], f"{where}.output")}
        name = item.get("name") or self.call_names.get(call_id)
        if name:
            message["name"] = name
        self.messages.append(message)


def input_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items (a stored history followed by the request's own) as chat messages."""
    conversation = _Conversation()
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidParameterError("input", f"{where}: must be an object")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind not in _ITEM_FIELDS:
            if isinstance(kind, str):
                raise NotSupportedError(f"{where}: '{kind}' items are not supported", param="input")
            raise InvalidParameterError("input", f"{where}: needs a 'type' (message, function_call, "
                                                 "function_call_output, reasoning) or a 'role'")
        check_fields(item, _ITEM_FIELDS[kind], where, "input")
        if kind == "message":
            conversation.message(item, where)
        elif kind == "function_call":
            conversation.call(item, where)
        elif kind == "function_call_output":
            conversation.output(item, where)
        else:
            conversation.reasoning.append(_reasoning_text(item))
    if not conversation.messages:
        raise InvalidParameterError("input", "must contain at least one message")
    return conversation.messages


def input_items(body: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input as a list of items (a string is one user message)."""
    if isinstance(body.input, str):
        return [{"type": "message", "role": "user", "content": body.input}]
    return list(body.input)


def chat_tools(tools: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]] | None, list[bool]]:
    """Function tools in the chat API's shape, and which are strict."""
    if tools is None:
        return None, []
    converted, strict = [], []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        kind = tool.get("type")
        if kind != "function":
            raise NotSupportedError(f"{where}.type: only function tools are supported, not {kind!r}", param="tools")
        check_fields(tool, _TOOL_FIELDS, where, "tools")
        converted.append(function_tool(tool.get("name"), tool.get("description"), tool.get("parameters"),
                                       where, "tools"))
        strict.append(bool(tool.get("strict")))
    return converted, strict


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise NotSupportedError(f"tool_choice: {choice.get('type')!r} is not supported; use auto, required, none "
                            'or {"type": "function", "name": ...}', param="tool_choice")


def _response_format(body: ResponsesRequest) -> dict[str, Any] | None:
    fmt = body.text.format if body.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.schema_ is None:
        raise InvalidParameterError("text.format.schema", "required for type json_schema")
    spec = {"name": fmt.name or "response", "schema": fmt.schema_, "strict": fmt.strict,
            "description": fmt.description}
    return {"type": "json_schema", "json_schema": {k: v for k, v in spec.items() if v is not None}}


def reject_unsupported(body: ResponsesRequest) -> None:
    """Responses features fw does not have, refused by name rather than ignored."""
    for name in ("conversation", "prompt", "max_tool_calls", "top_logprobs"):
        if getattr(body, name) is not None:
            raise NotSupportedError(f"{name} is not supported by this server", param=name)
    if body.include:
        raise NotSupportedError(f"include: {body.include[0]!r} is not supported by this server", param="include")
    if body.truncation == "auto":
        raise NotSupportedError('truncation "auto" is not supported; a prompt that does not fit is refused',
                                param="truncation")
    if body.text is not None and body.text.verbosity is not None:
        raise NotSupportedError("text.verbosity is not supported", param="text.verbosity")
    reasoning = body.reasoning
    if reasoning is not None and (reasoning.summary or reasoning.generate_summary):
        raise NotSupportedError("reasoning summaries are not generated; the reasoning itself is returned as "
                                "reasoning_text content", param="reasoning.summary")
    if reasoning is not None and reasoning.effort not in (None, "low", "medium", "high"):
        raise NotSupportedError(f"reasoning.effort {reasoning.effort!r}: only low, medium and high are passed "
                                "to the chat template", param="reasoning.effort")
    if body.stream_options is not None and not body.stream:
        raise InvalidParameterError("stream_options", "only allowed when stream is true")


def chat_request_of(body: ResponsesRequest, history: list[dict[str, Any]]) -> ChatCompletionRequest:
    """``body`` after the stored ``history`` (previous_response_id's items), as a chat request."""
    reject_unsupported(body)
    messages = input_messages(history + input_items(body))
    if body.instructions:
        messages.insert(0, {"role": "system", "content": body.instructions})
    tools, strict = chat_tools(body.tools)
    refuse_strict_under_auto(strict, body.tool_choice if tools else None, "tools")
    fields: dict[str, Any] = {name: getattr(body, name) for name in _SAMPLING}
    fields.update(
        messages=messages, tools=tools, tool_choice=chat_tool_choice(body.tool_choice),
        max_completion_tokens=body.max_output_tokens, response_format=_response_format(body),
        reasoning_effort=body.reasoning.effort if body.reasoning is not None else None,
    )
    return chat_request(fields)
