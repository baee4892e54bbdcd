"""render_chat: messages in, prompt text out."""

from __future__ import annotations

import json

from typing import Any, Literal

import jinja2

from fw.chat.content import detect_content_format, final_text, normalize_messages
from fw.chat.conversation import prepare_messages
from fw.chat.template import TemplateRaised, compile_template, resolve_chat_template
from fw.errors import InvalidParameterError, NotSupportedError

_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
_RESERVED = {"messages", "tools", "documents", "add_generation_prompt"}


def _special_tokens(tokenizer: Any) -> dict[str, Any]:
    """Templates print these by name ({{ bos_token }})."""
    found = {}
    for name in _SPECIAL_TOKENS:
        try:
            value = getattr(tokenizer, name, None)
        except Exception:  # noqa: BLE001 - some tokenizers raise for unset tokens
            value = None
        if value is not None:
            found[name] = str(value)
    return found


def render_chat(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    *,
    chat_template: str | None = None,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
    tools: list[dict[str, Any]] | None = None,
    documents: list[dict[str, Any]] | None = None,
    chat_template_kwargs: dict[str, Any] | None = None,
    content_format: Literal["auto", "string", "openai"] = "auto",
) -> str:
    """Render OpenAI-style ``messages`` into the model's prompt text.

    :param tokenizer: supplies the default template (``tokenizer.chat_template``) and the
        special tokens templates print (``bos_token`` ...).
    :param chat_template: template text overriding the tokenizer's.
    :param add_generation_prompt: end with the cue for the assistant's reply.
    :param continue_final_message: end inside the last message, so the model continues
        it (an assistant "prefill"); excludes ``add_generation_prompt``.
    :param tools: tool definitions, visible to the template as ``tools``.
    :param documents: RAG documents, visible to the template as ``documents``.
    :param chat_template_kwargs: extra variables for the template.
    :param content_format: see ``fw.chat.content``.
    :raises InvalidParameterError: bad messages, or messages the template rejects.
    :raises NotSupportedError: no template at all, or non-text content.
    """
    if not messages:
        raise InvalidParameterError("messages", "must contain at least one message")
    if continue_final_message and add_generation_prompt:
        raise InvalidParameterError(
            "continue_final_message", "cannot be combined with add_generation_prompt=true"
        )
    source = resolve_chat_template(tokenizer, chat_template, tools=tools)
    if not source:
        raise NotSupportedError(
            "this model has no chat template, so it cannot answer chat requests; start the "
            "server with --chat-template (a file or an inline template), or use the "
            "completions API", param="messages",
        )
    template = compile_template(source)
    fmt = detect_content_format(source) if content_format == "auto" else content_format
    prepared = prepare_messages(messages, source)
    conversation = [_arguments_as_objects(m) for m in normalize_messages(prepared, fmt)]
    extra = {k: v for k, v in (chat_template_kwargs or {}).items() if k not in _RESERVED}
    variables = {
        **_special_tokens(tokenizer), **extra,
        "messages": conversation, "tools": tools, "documents": documents,
        "add_generation_prompt": add_generation_prompt,
    }
    try:
        text = template.render(**variables)
    except TemplateRaised as exc:
        raise InvalidParameterError("messages", f"the chat template rejected the messages: {exc}") from None
    except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidParameterError(
            "messages", f"the chat template failed on these messages: {type(exc).__name__}: {exc}"
        ) from None
    if continue_final_message:
        text = _cut_after_final_message(text, conversation[-1])
    return text


def _arguments_as_objects(message: dict[str, Any]) -> dict[str, Any]:
    """OpenAI sends a past call's arguments as a JSON string; templates print them with
    ``tojson``, so they get the object (a string that is not JSON stays as it is)."""
    calls = message.get("tool_calls")
    if not calls:
        return message
    converted = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(arguments, str):
            try:
                call = {**call, "function": {**function, "arguments": json.loads(arguments)}}
            except json.JSONDecodeError:
                pass
        converted.append(call)
    return {**message, "tool_calls": converted}


def _cut_after_final_message(text: str, last: dict[str, Any]) -> str:
    """Drop what the template appends after the last message (its end-of-turn marker)."""
    content = final_text(last).strip()
    if not content:
        raise InvalidParameterError(
            "continue_final_message", "the final message has no text to continue"
        )
    where = text.rfind(content)
    if where < 0:
        raise InvalidParameterError(
            "continue_final_message", "the chat template does not reproduce the final message's text"
        )
    return text[: where + len(content)]
