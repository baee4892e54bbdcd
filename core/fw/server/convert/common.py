"""What the Responses and Messages converters share: checking the fields of an item,
function tools in the chat API's shape, the rule for ``strict`` tools, building the
ChatCompletionRequest they hand to the chat pipeline, and the order of a delta's pieces."""

from __future__ import annotations

from typing import Any, Iterable

from pydantic import ValidationError

from fw.errors import InvalidParameterError, NotSupportedError
from fw.parsing.messages import ToolCallDelta
from fw.server.protocol.chat import ChatCompletionRequest


def check_fields(item: dict[str, Any], known: Iterable[str], where: str, param: str) -> None:
    """Refuse a field fw does not know in a nested object (one set to null says nothing
    and passes: SDKs dump their optional fields that way)."""
    unknown = [k for k, v in item.items() if k not in known and v is not None]
    if unknown:
        raise InvalidParameterError(param, f"{where}: unrecognized field {unknown[0]!r}; this server does "
                                           "not support it")


def function_tool(name: Any, description: Any, parameters: Any, where: str, param: str) -> dict[str, Any]:
    """One function tool as the chat pipeline (and the chat template) takes it."""
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(param, f"{where}.name: required, a non-empty string")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidParameterError(param, f"{where}: the parameters schema must be a JSON object")
    function: dict[str, Any] = {"name": name}
    if description is not None:
        function["description"] = description
    function["parameters"] = parameters if parameters is not None else {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def refuse_strict_under_auto(strict: list[bool], tool_choice: Any, param: str) -> None:
    """``strict`` means every call's arguments match the schema. fw guarantees that by
    generating forced calls (tool choice "required" or a named function) under the
    schema's grammar; under "auto" the model writes free text that a parser reads, so
    nothing would guarantee it and a strict tool is refused rather than trusted."""
    if any(strict) and tool_choice in (None, "auto"):
        index = strict.index(True)
        raise NotSupportedError(
            f"{param}[{index}].strict: strict arguments are enforced only for forced calls (tool choice "
            '"required" or a named function); with "auto" set strict to false', param=param)


def chat_request(fields: dict[str, Any]) -> ChatCompletionRequest:
    """The chat pipeline's request; a field that does not fit is a 400, never a 500."""
    try:
        return ChatCompletionRequest.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ()))
        raise InvalidParameterError(where or "body", f"{where}: {error.get('msg', 'invalid value')}") from None


def split_open_call(tool_calls: list[ToolCallDelta]) -> tuple[list[ToolCallDelta], list[ToolCallDelta]]:
    """A delta's tool-call pieces as (the last pieces of the call already open, the rest).
    The first go out before the delta's text: that text closes the call's block (item), and
    pieces that come after it could no longer be sent."""
    split = next((i for i, call in enumerate(tool_calls) if call.id is not None), len(tool_calls))
    return tool_calls[:split], tool_calls[split:]
