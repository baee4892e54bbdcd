"""POST /v1/chat/completions: request, response and stream chunk."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from fw.server.protocol.common import Int64, RequestModel, SamplingRequest, UsageInfo


class ChatMessage(BaseModel):
    """One message. Fields beyond role and content (name, tool_calls, tool_call_id ...)
    are passed to the chat template as they are."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatTemplateFields(RequestModel):
    """How messages become a prompt; shared with /tokenize."""

    messages: list[ChatMessage] = Field(..., description="The conversation so far.")
    add_generation_prompt: bool = Field(True, description="End the prompt with the assistant's turn cue.")
    continue_final_message: bool = Field(
        False, description="Continue the last message instead of starting a new one (excludes add_generation_prompt)."
    )
    add_special_tokens: bool = Field(
        False, description="Add special tokens (BOS) on top of what the chat template writes."
    )
    documents: list[dict[str, Any]] | None = Field(None, description="RAG documents for templates that use them.")
    chat_template: str | None = Field(
        None, description="A Jinja template for this request (needs --trust-request-chat-template)."
    )
    chat_template_kwargs: dict[str, Any] | None = Field(None, description="Extra variables for the template.")
    tools: list[dict[str, Any]] | None = Field(None, description="Tool definitions, shown to the template.")


class ChatCompletionRequest(SamplingRequest, ChatTemplateFields):
    max_tokens: Int64 | None = Field(None, description="Deprecated by OpenAI in favour of max_completion_tokens.")
    max_completion_tokens: Int64 | None = Field(None, description="Tokens to generate; null fills the context.")
    logprobs: bool = False
    top_logprobs: Int64 | None = Field(None, description="Top tokens per position; needs logprobs=true.")
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = Field(
        None, description="Passed to the chat template as reasoning_effort."
    )
    echo: bool = Field(False, description="Prepend the last message when it has the response's role.")
    # accepted for compatibility, no effect
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    # OpenAI features fw does not have; a value other than the default is refused
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    verbosity: str | None = None


class ChatLogprobToken(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatLogprobEntry(ChatLogprobToken):
    top_logprobs: list[ChatLogprobToken] = Field(default_factory=list)


class ChatChoiceLogprobs(BaseModel):
    content: list[ChatLogprobEntry] | None = None


class ChatResponseMessage(BaseModel):
    role: str
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    #: the model's reasoning, split off by --reasoning-parser (vLLM's name, and the newer one)
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatResponseMessage
    logprobs: ChatChoiceLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageInfo
    #: per prompt token, when the request set prompt_logprobs (vLLM's extra)
    prompt_logprobs: list[dict[str, dict[str, Any]] | None] | None = None


class DeltaMessage(BaseModel):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    @model_serializer
    def _only_set(self) -> dict[str, Any]:
        """A delta carries only what changed: no "role": null after the first chunk."""
        fields = ("role", "content", "reasoning_content", "reasoning", "tool_calls")
        return {k: getattr(self, k) for k in fields if getattr(self, k) is not None}


class ChatStreamChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChatChoiceLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatStreamChoice]
    usage: UsageInfo | None = None
