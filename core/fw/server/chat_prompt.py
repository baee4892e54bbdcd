"""Chat messages to prompt text with the server's settings (shared by the chat and
tokenize routes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fw.chat import render_chat
from fw.server.protocol.chat import ChatTemplateFields
from fw.server.protocol.models import TokenizeRequest

if TYPE_CHECKING:
    from fw.server.context import ServerContext


#: render_messages' default: the tools the request itself carries
_REQUEST_TOOLS = object()


def message_dicts(fields: ChatTemplateFields | TokenizeRequest) -> list[dict[str, Any]]:
    """Messages as the client sent them (fields it left out stay out)."""
    return [m.model_dump(exclude_unset=True) for m in fields.messages or []]


def render_messages(ctx: "ServerContext", fields: ChatTemplateFields | TokenizeRequest,
                    messages: list[dict[str, Any]], extra_kwargs: dict[str, Any] | None = None,
                    *, tools: Any = _REQUEST_TOOLS) -> str:
    """``tools``: what the template sees; by default the request's own."""
    kwargs = {k: v for k, v in (fields.chat_template_kwargs or {}).items() if k != "chat_template"}
    kwargs.update(extra_kwargs or {})
    return render_chat(
        ctx.require_tokenizer("messages"), messages,
        chat_template=ctx.request_template(fields),
        add_generation_prompt=fields.add_generation_prompt,
        continue_final_message=fields.continue_final_message,
        tools=fields.tools if tools is _REQUEST_TOOLS else tools,
        documents=fields.documents,
        chat_template_kwargs=kwargs,
        content_format=ctx.config.frontend.chat_template_content_format,
    )
