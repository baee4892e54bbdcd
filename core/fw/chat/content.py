"""Message content as a template wants it: one string, or OpenAI's list of parts.

Templates differ: most read ``message['content']`` as a string, some loop over it as a
list of ``{"type": "text", "text": ...}`` parts. ``auto`` looks at the template's syntax
tree to tell which; a wrong guess can be overridden with
``--chat-template-content-format``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Literal

from jinja2 import nodes

from fw.chat.template import ENVIRONMENT
from fw.errors import InvalidParameterError, NotSupportedError

ContentFormat = Literal["string", "openai"]


def _is_content_access(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Getattr):
        return node.attr == "content"
    if isinstance(node, nodes.Getitem):
        return isinstance(node.arg, nodes.Const) and node.arg.value == "content"
    return False


@lru_cache(maxsize=32)
def detect_content_format(template: str) -> ContentFormat:
    """``openai`` if the template iterates over a message's content, else ``string``."""
    try:
        tree = ENVIRONMENT.parse(template)
    except Exception:  # noqa: BLE001 - compile_template reports syntax errors properly
        return "string"
    # Names bound to a message's content: {% set content = message['content'] %}
    aliases = {
        target.name
        for assign in tree.find_all(nodes.Assign)
        if _is_content_access(assign.node)
        for target in [assign.target] if isinstance(target, nodes.Name)
    }
    for loop in tree.find_all(nodes.For):
        it = loop.iter
        if isinstance(it, nodes.Filter):  # {% for part in message.content | selectattr(...) %}
            it = it.node
        if _is_content_access(it) or (isinstance(it, nodes.Name) and it.name in aliases):
            return "openai"
    return "string"


def _text_parts(parts: list[Any], index: int) -> list[str]:
    texts = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind is None:
            raise InvalidParameterError(
                "messages", f"messages[{index}].content: each part must be an object with a 'type'"
            )
        else:
            raise NotSupportedError(
                f"messages[{index}].content: '{kind}' parts are not supported; this server "
                "takes text only", param="messages",
            )
    return texts


def _parse_tool_arguments(message: dict[str, Any]) -> None:
    """Templates index tool-call arguments as a mapping; OpenAI sends a JSON string."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return
    parsed = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            try:
                arguments = json.loads(function["arguments"])
            except json.JSONDecodeError:
                arguments = function["arguments"]
            call = {**call, "function": {**function, "arguments": arguments}}
        parsed.append(call)
    message["tool_calls"] = parsed


def normalize_messages(messages: list[dict[str, Any]], content_format: ContentFormat) -> list[dict[str, Any]]:
    """Copies of ``messages`` whose content has the shape the template reads."""
    out = []
    for index, original in enumerate(messages):
        if not isinstance(original, dict) or not isinstance(original.get("role"), str):
            raise InvalidParameterError("messages", f"messages[{index}] must be an object with a 'role'")
        message = dict(original)
        content = message.get("content")
        if content is None:  # an assistant turn that only called tools
            message["content"] = "" if content_format == "string" else []
        elif isinstance(content, list):
            texts = _text_parts(content, index)
            message["content"] = ("\n".join(texts) if content_format == "string"
                                  else [{"type": "text", "text": t} for t in texts])
        elif isinstance(content, str) and content_format == "openai":
            message["content"] = [{"type": "text", "text": content}]
        elif not isinstance(content, str):
            raise InvalidParameterError(
                "messages", f"messages[{index}].content must be a string or a list of parts"
            )
        _parse_tool_arguments(message)
        out.append(message)
    return out


def final_text(message: dict[str, Any]) -> str:
    """The text a rendered prompt must end with when this message is continued: the
    content, or its last text part ('' if it has none)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        last = content[-1]
        return last.get("text", "") if isinstance(last, dict) else ""
    return ""
