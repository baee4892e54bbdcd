"""OpenAI chat messages checked as OpenAI checks them, then fitted to the template.

Agent loops (the ``openai`` SDK, LangChain, the Agents SDK) send the assistant turn that
called tools with ``"content": null`` (or none at all) beside ``tool_calls``, then one
``tool`` message per result. Templates written for plain chat break on that (``'\\n' +
None``) or drop the calls, so before rendering:

* missing or null content becomes empty content (``""``, or ``[]`` for templates that
  read a list of parts);
* a template that never reads ``tool_calls`` gets the calls as text in the assistant's
  content, as the JSON array fw's ``tool_choice="required"`` makes a model write
  (``[{"name": ..., "parameters": {...}}]``), so the prompt shows what was called;
* ``developer`` (OpenAI's newer name for the system role) becomes ``system`` for
  templates that do not name it.

Messages are checked as OpenAI's API checks them (a known role, content where OpenAI
requires it, ``tool_call_id`` on tool results); a role outside OpenAI's is accepted only
when the template names it (Llama 3.1's ``ipython``, say).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import nodes

from fw.chat.template import ENVIRONMENT
from fw.errors import InvalidParameterError

OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


@dataclass(frozen=True)
class TemplateTraits:
    """What a chat template reads, from its syntax tree."""

    reads_tool_calls: bool
    #: every string literal in the template (role names it compares against, ...)
    literals: frozenset[str]


@lru_cache(maxsize=32)
def template_traits(source: str) -> TemplateTraits:
    try:
        tree = ENVIRONMENT.parse(source)
    except Exception:  # noqa: BLE001 - compile_template reports syntax errors properly
        return TemplateTraits(True, frozenset())
    literals = frozenset(c.value for c in tree.find_all(nodes.Const) if isinstance(c.value, str))
    reads_calls = "tool_calls" in literals or any(n.attr == "tool_calls" for n in tree.find_all(nodes.Getattr))
    return TemplateTraits(reads_calls, literals)


def _fail(index: int, field: str, problem: str) -> InvalidParameterError:
    return InvalidParameterError("messages", f"messages[{index}].{field}: {problem}")


def check_message(index: int, message: Any, traits: TemplateTraits) -> None:
    """OpenAI's rules for one message; InvalidParameterError names the message and field."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise InvalidParameterError("messages", f"messages[{index}] must be an object with a 'role'")
    role = message["role"]
    if role not in OPENAI_ROLES and role not in traits.literals:
        raise _fail(index, "role", f"{role!r} is not a role; roles are {', '.join(OPENAI_ROLES)} "
                                   "(or one the chat template names)")
    content = message.get("content")
    has_calls = bool(message.get("tool_calls"))
    if content is None and role != "assistant":
        raise _fail(index, "content", f"required for a {role!r} message")
    if content is None and not has_calls and not message.get("refusal"):
        raise _fail(index, "content", "required unless the message has tool_calls")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise _fail(index, "tool_call_id", "required for a 'tool' message (the id of the call it answers)")
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list) or role != "assistant":
            raise _fail(index, "tool_calls", "must be a list, on an 'assistant' message")
        for number, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _fail(index, f"tool_calls[{number}]",
                            "must be {'type': 'function', 'function': {'name': ..., 'arguments': ...}}")


def _calls_as_text(calls: list[dict[str, Any]]) -> str:
    rendered = []
    for call in calls:
        function = call["function"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                pass
        rendered.append({"name": function["name"], "parameters": {} if arguments is None else arguments})
    return json.dumps(rendered, ensure_ascii=False)


def _append_text(content: Any, text: str) -> Any:
    if isinstance(content, list):
        return [*content, {"type": "text", "text": text}]
    return f"{content}\n\n{text}" if content else text


def prepare_messages(messages: list[Any], source: str) -> list[dict[str, Any]]:
    """Check ``messages`` and fit them to the template ``source`` (copies; see the module)."""
    traits = template_traits(source)
    out = []
    for index, original in enumerate(messages):
        check_message(index, original, traits)
        message = dict(original)
        if message["role"] == "developer" and "developer" not in traits.literals:
            message["role"] = "system"
        calls = message.get("tool_calls")
        if calls and not traits.reads_tool_calls:
            message["content"] = _append_text(message.get("content"), _calls_as_text(calls))
        out.append(message)
    return out
