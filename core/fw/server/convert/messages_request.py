"""An Anthropic Messages request as the chat pipeline's request.

``system`` becomes the first message. In a user turn, ``tool_result`` blocks become
``tool`` messages (a result with ``is_error`` is shown to the model prefixed with
"Error: ") and text blocks a user message, in the order given. In an assistant turn,
text blocks are the content, ``tool_use`` blocks its ``tool_calls`` (the input as JSON
arguments) and ``thinking`` blocks its ``reasoning_content``. ``thinking`` sets the
template variable ``enable_thinking`` (the switch templates such as Qwen3's read).
"""

from __future__ import annotations

import json
from typing import Any

from fw.errors import InvalidParameterError, NotSupportedError
from fw.server.convert.common import check_fields, chat_request, function_tool, refuse_strict_under_auto
from fw.server.protocol.chat import ChatCompletionRequest
from fw.server.protocol.messages import CountTokensRequest, MessagesRequest

_BLOCK_FIELDS = {
    "text": {"type", "text", "cache_control", "citations"},
    "tool_use": {"type", "id", "name", "input", "cache_control", "caller"},
    "tool_result": {"type", "tool_use_id", "content", "is_error", "cache_control"},
    "thinking": {"type", "thinking", "signature"},
}
_TOOL_FIELDS = {"type", "name", "description", "input_schema", "cache_control", "strict"}
_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
             "frequency_penalty", "seed", "ignore_eos", "min_tokens", "priority", "model")


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidParameterError("messages", f"{where}: must be a string or a list of content blocks")
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind is None:
            raise InvalidParameterError("messages", f"{where}[{j}]: must be an object with a 'type'")
        if kind not in _BLOCK_FIELDS:
            raise NotSupportedError(f"{where}[{j}]: '{kind}' blocks are not supported; this server takes text, "
                                    "tool_use, tool_result and thinking", param="messages")
        check_fields(block, _BLOCK_FIELDS[kind], f"{where}[{j}]", "messages")
    return content


def _text(block: dict[str, Any], where: str) -> str:
    if not isinstance(block.get("text"), str):
        raise InvalidParameterError("messages", f"{where}.text: required, a string")
    return block["text"]


def _result_text(block: dict[str, Any], where: str) -> str:
    content = block.get("content", "")
    if isinstance(content, list):
        parts = []
        for k, inner in enumerate(content):
            if not isinstance(inner, dict) or inner.get("type") != "text":
                kind = inner.get("type") if isinstance(inner, dict) else None
                raise NotSupportedError(f"{where}.content[{k}]: only text is supported in a tool result, "
                                        f"not {kind!r}", param="messages")
            parts.append(_text(inner, f"{where}.content[{k}]"))
        content = "\n".join(parts)
    if not isinstance(content, str):
        raise InvalidParameterError("messages", f"{where}.content: must be a string or a list of text blocks")
    return f"Error: {content}" if block.get("is_error") else content


def _user_turn(blocks: list[dict[str, Any]], where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            messages.append({"role": "user", "content": "\n".join(texts)})
            texts.clear()

    for j, block in enumerate(blocks):
        here = f"{where}[{j}]"
        if block["type"] == "text":
            texts.append(_text(block, here))
        elif block["type"] == "tool_result":
            flush()
            tool_use_id = block.get("tool_use_id")
            if not isinstance(tool_use_id, str):
                raise InvalidParameterError("messages", f"{here}.tool_use_id: required, a string")
            message = {"role": "tool", "tool_call_id": tool_use_id, "content": _result_text(block, here)}
            if tool_use_id in names:
                message["name"] = names[tool_use_id]
            messages.append(message)
        else:
            raise InvalidParameterError("messages", f"{here}: '{block['type']}' blocks belong in assistant turns")
    flush()
    return messages


def _assistant_turn(blocks: list[dict[str, Any]], where: str, names: dict[str, str]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    texts, thinking, calls = [], [], []
    for j, block in enumerate(blocks):
        here = f"{where}[{j}]"
        if block["type"] == "text":
            texts.append(_text(block, here))
        elif block["type"] == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif block["type"] == "tool_use":
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, dict):
                raise InvalidParameterError("messages", f"{here}: a tool_use block needs id, name and an "
                                                        "input object")
            names[call_id] = name
            calls.append({"id": call_id, "type": "function",
                          "function": {"name": name, "arguments": json.dumps(arguments)}})
        else:
            raise InvalidParameterError("messages", f"{here}: tool_result blocks belong in user turns")
    message["content"] = "".join(texts)
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return message


def chat_messages(body: CountTokensRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if body.system is not None:
        system = body.system if isinstance(body.system, str) else "\n".join(
            _text(b, f"system[{i}]") for i, b in enumerate(_blocks(body.system, "system")))
        messages.append({"role": "system", "content": system})
    names: dict[str, str] = {}
    for i, message in enumerate(body.messages):
        where = f"messages[{i}]"
        role = message.get("role")
        check_fields(message, {"role", "content"}, where, "messages")
        blocks = _blocks(message.get("content"), f"{where}.content")
        if role == "user":
            messages += _user_turn(blocks, f"{where}.content", names)
        elif role == "assistant":
            messages.append(_assistant_turn(blocks, f"{where}.content", names))
        else:
            raise InvalidParameterError("messages", f"{where}.role: must be user or assistant")
    if len(messages) == (body.system is not None):
        raise InvalidParameterError("messages", "must contain at least one message")
    return messages


def _tools(body: CountTokensRequest) -> tuple[list[dict[str, Any]] | None, list[bool]]:
    if body.tools is None:
        return None, []
    tools, strict = [], []
    for i, tool in enumerate(body.tools):
        where = f"tools[{i}]"
        if tool.get("type") not in (None, "custom"):
            raise NotSupportedError(f"{where}.type: {tool.get('type')!r} tools are not supported; only custom "
                                    "tools (name, input_schema)", param="tools")
        check_fields(tool, _TOOL_FIELDS, where, "tools")
        if not isinstance(tool.get("input_schema"), dict):
            raise InvalidParameterError("tools", f"{where}.input_schema: required, a JSON schema object")
        tools.append(function_tool(tool.get("name"), tool.get("description"), tool["input_schema"], where, "tools"))
        strict.append(bool(tool.get("strict")))
    return tools, strict


def _tool_choice(choice: dict[str, Any] | None) -> tuple[Any, bool | None]:
    """The chat tool choice and parallel_tool_calls of Anthropic's tool_choice."""
    if choice is None:
        return None, None
    kind = choice.get("type")
    check_fields(choice, {"type", "name", "disable_parallel_tool_use"}, "tool_choice", "tool_choice")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise InvalidParameterError("tool_choice", 'must be {"type": "auto" | "any" | "none"} or '
                                               '{"type": "tool", "name": ...}')


def _thinking_kwargs(body: CountTokensRequest) -> dict[str, Any]:
    thinking = body.thinking
    kwargs = dict(body.chat_template_kwargs or {})
    if thinking is None:
        return kwargs
    if thinking.display == "omitted":
        raise NotSupportedError('thinking.display "omitted" is not supported; the thinking is returned',
                                param="thinking.display")
    if thinking.type == "enabled":
        budget = thinking.budget_tokens
        if budget is None or budget < 1024:
            raise InvalidParameterError("thinking.budget_tokens", "required with thinking enabled, at least 1024")
        max_tokens = getattr(body, "max_tokens", None)
        if max_tokens is not None and budget >= max_tokens:
            raise InvalidParameterError("thinking.budget_tokens", f"must be less than max_tokens ({max_tokens})")
    kwargs["enable_thinking"] = thinking.type != "disabled"
    return kwargs


def _output_config(body: CountTokensRequest) -> tuple[dict[str, Any] | None, str | None]:
    """response_format and reasoning_effort of output_config."""
    config = body.output_config
    if config is None:
        return None, None
    if config.effort not in (None, "low", "medium", "high"):
        raise NotSupportedError(f"output_config.effort {config.effort!r}: only low, medium and high are passed "
                                "to the chat template", param="output_config.effort")
    fmt = None
    if config.format is not None:
        fmt = {"type": "json_schema", "json_schema": {"name": "output", "schema": config.format.schema_}}
    return fmt, config.effort


def chat_request_of(body: CountTokensRequest) -> ChatCompletionRequest:
    """``body`` as a chat request (a count_tokens request: without the sampling fields)."""
    tools, strict = _tools(body)
    tool_choice, parallel = _tool_choice(body.tool_choice)
    refuse_strict_under_auto(strict, tool_choice if tools else None, "tools")
    response_format, effort = _output_config(body)
    fields: dict[str, Any] = {name: getattr(body, name, None) for name in _SAMPLING}
    if isinstance(body, MessagesRequest):
        check_fields(body.metadata or {}, {"user_id"}, "metadata", "metadata")
        fields.update(max_completion_tokens=body.max_tokens, stop=body.stop_sequences)
    fields.update(messages=chat_messages(body), tools=tools, tool_choice=tool_choice, parallel_tool_calls=parallel,
                  response_format=response_format, reasoning_effort=effort,
                  chat_template_kwargs=_thinking_kwargs(body) or None)
    return chat_request(fields)
