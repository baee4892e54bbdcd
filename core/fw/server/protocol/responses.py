"""POST /v1/responses (OpenAI's Responses API): request, response object and output items.

Field names and types follow the ``openai`` SDK's own models (``openai.types.responses``),
which the tests check these shapes against. Input items stay plain dicts here: the
converter (``fw.server.convert.responses_request``) reads them and names the item a
mistake is in.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, field_validator

from fw.server.protocol.common import Int64, RequestModel


class TextFormat(RequestModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextConfig(RequestModel):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = Field(None, description="Not supported.")


class ReasoningConfig(RequestModel):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = Field(
        None, description="low, medium or high: passed to the chat template as reasoning_effort.")
    summary: Literal["auto", "concise", "detailed"] | None = Field(
        None, description="Not supported: the reasoning itself is returned (reasoning_text).")
    generate_summary: Literal["auto", "concise", "detailed"] | None = Field(None, description="Not supported.")


class ResponsesStreamOptions(RequestModel):
    include_obfuscation: bool | None = Field(None, description="Accepted; fw never pads its events.")


class ResponsesRequest(RequestModel):
    model: str | None = Field(None, description="One of the served model names; defaults to the first.")
    input: str | list[dict[str, Any]] = Field(
        ..., description="A user message, or a list of items: messages (user, assistant, system, "
                         "developer), function_call, function_call_output, reasoning.")
    instructions: str | None = Field(None, description="A system message put first (not carried over "
                                                       "by previous_response_id).")
    max_output_tokens: Int64 | None = Field(None, description="Tokens to generate; null fills the context.")
    temperature: float | None = None
    top_p: float | None = None
    tools: list[dict[str, Any]] | None = Field(None, description="Function tools: {type, name, parameters, "
                                                                 "description, strict}.")
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, str] | None = Field(None, description="Up to 16 pairs, returned with the response.")
    store: bool | None = Field(None, description="Keep the response for previous_response_id and "
                                                 "GET /v1/responses/{id} (default true).")
    previous_response_id: str | None = None
    background: bool | None = Field(None, description="Answer at once with a queued response; poll it "
                                                      "with GET /v1/responses/{id}.")
    stream: bool | None = False
    stream_options: ResponsesStreamOptions | None = None
    include: list[str] | None = Field(None, description="Not supported (no value is).")
    top_logprobs: Int64 | None = Field(None, description="Not supported.")
    truncation: Literal["auto", "disabled"] | None = Field(None, description='Only "disabled".')
    max_tool_calls: Int64 | None = Field(None, description="Not supported.")
    conversation: Any = Field(None, description="Not supported; use previous_response_id.")
    prompt: Any = Field(None, description="Not supported (stored prompt templates).")
    user: str | None = Field(None, description="Accepted for compatibility; not used.")
    safety_identifier: str | None = Field(None, description="Accepted for compatibility; not used.")
    prompt_cache_key: str | None = Field(None, description="Accepted; fw's prefix cache needs no key.")
    service_tier: str | None = Field(None, description="Accepted for compatibility; not used.")
    # fw's sampling extras (vLLM's names)
    top_k: Int64 | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: Int64 | None = None
    stop: str | list[str] | None = None
    ignore_eos: bool = False
    min_tokens: Int64 = 0
    chat_template_kwargs: dict[str, Any] | None = Field(None, description="Extra variables for the template.")
    priority: Int64 = Field(0, description="Lower runs first under --scheduling-policy priority.")
    request_id: str | None = Field(None, description="The id the server uses for this request.")

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        """OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512."""
        if value is None:
            return value
        if len(value) > 16:
            raise ValueError(f"at most 16 pairs, got {len(value)}")
        for key, item in value.items():
            if len(key) > 64 or len(item) > 512:
                raise ValueError(f"key {key[:64]!r}: keys are at most 64 characters, values at most 512")
        return value


# -- the response ---------------------------------------------------------------------

class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[OutputText]


class FunctionCallItem(BaseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"]


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class ReasoningItem(BaseModel):
    id: str
    type: Literal["reasoning"] = "reasoning"
    summary: list[Any] = Field(default_factory=list)
    content: list[ReasoningText]
    status: Literal["in_progress", "completed", "incomplete"]


OutputItem = Annotated[Union[OutputMessage, FunctionCallItem, ReasoningItem], Field(discriminator="type")]


class InputTokensDetails(BaseModel):
    #: prompt tokens read from the prefix cache
    cached_tokens: int = 0
    #: prompt tokens written to the prefix cache (its full KV blocks beyond the cached ones)
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    #: tokens of the text the reasoning parser split off
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class ResponseError(BaseModel):
    code: Literal["server_error", "rate_limit_exceeded", "invalid_prompt"]
    message: str


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    completed_at: int | None = None
    status: Literal["queued", "in_progress", "completed", "incomplete", "cancelled", "failed"]
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    usage: ResponseUsage | None = None
    incomplete_details: IncompleteDetails | None = None
    error: ResponseError | None = None
    instructions: str | None = None
    metadata: dict[str, str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    previous_response_id: str | None = None
    store: bool = True
    background: bool = False
    truncation: str = "disabled"
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None


class DeletedResponse(BaseModel):
    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool = True
