"""POST /v1/messages and /v1/messages/count_tokens (Anthropic's Messages API).

Field names and types follow the ``anthropic`` SDK's own models (``anthropic.types``),
which the tests check these shapes against. Messages and their content blocks stay
plain dicts here: the converter (``fw.server.convert.messages_request``) reads them and
names the block a mistake is in.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field

from fw.server.protocol.common import Int64, RequestModel


class ThinkingConfig(RequestModel):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: Int64 | None = Field(
        None, description="Checked as Anthropic checks it (at least 1024, below max_tokens); the "
                          "thinking is bounded by max_tokens.")
    display: Literal["summarized", "omitted"] | None = Field(None, description='Only "summarized" (the '
                                                                               "thinking is returned).")


class OutputFormat(RequestModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(..., alias="schema")


class OutputConfig(RequestModel):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = Field(
        None, description="low, medium or high: passed to the chat template as reasoning_effort.")
    format: OutputFormat | None = Field(None, description="A JSON schema the answer must follow.")


class CountTokensRequest(RequestModel):
    """What makes the prompt; /v1/messages/count_tokens takes only this."""

    model: str | None = Field(None, description="One of the served model names; defaults to the first.")
    messages: list[dict[str, Any]] = Field(..., description="user and assistant turns: text, tool_use, "
                                                            "tool_result and thinking blocks.")
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = Field(None, description="Custom tools: {name, input_schema, "
                                                                 "description}.")
    tool_choice: dict[str, Any] | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
    cache_control: dict[str, Any] | None = Field(None, description="Accepted: fw caches every prompt prefix.")
    chat_template_kwargs: dict[str, Any] | None = Field(None, description="Extra variables for the template.")


class MessagesRequest(CountTokensRequest):
    max_tokens: Int64 = Field(..., description="Tokens to generate at most.")
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: Int64 | None = None
    metadata: dict[str, Any] | None = Field(None, description="{user_id}: accepted, not used.")
    service_tier: Literal["auto", "standard_only"] | None = Field(None, description="Accepted, not used.")
    # fw's sampling extras (vLLM's names)
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: Int64 | None = None
    ignore_eos: bool = False
    min_tokens: Int64 = 0
    priority: Int64 = Field(0, description="Lower runs first under --scheduling-policy priority.")
    request_id: str | None = Field(None, description="The id the server uses for this request.")


# -- the response ---------------------------------------------------------------------

class TextBlock(BaseModel):
    type: Literal["text"] = "text"
    text: str
    citations: list[Any] | None = None


class ToolUseBlock(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class ThinkingBlock(BaseModel):
    type: Literal["thinking"] = "thinking"
    thinking: str
    #: Anthropic signs its own thinking; fw's is unsigned
    signature: str = ""


ContentBlock = Annotated[Union[TextBlock, ToolUseBlock, ThinkingBlock], Field(discriminator="type")]


class MessagesUsage(BaseModel):
    """The prompt's tokens are input_tokens + cache_creation_input_tokens +
    cache_read_input_tokens, as Anthropic counts them."""

    #: prompt tokens neither read from nor written to the prefix cache
    input_tokens: int
    output_tokens: int
    #: prompt tokens written to the prefix cache (its full KV blocks beyond the cached ones)
    cache_creation_input_tokens: int = 0
    #: prompt tokens read from the prefix cache
    cache_read_input_tokens: int = 0


class MessageResponse(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentBlock]
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"] | None = None
    stop_sequence: str | None = None
    usage: MessagesUsage


class TokenCount(BaseModel):
    input_tokens: int


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str


class AnthropicErrorResponse(BaseModel):
    type: Literal["error"] = "error"
    error: AnthropicErrorDetail
