"""POST /v1/completions: request, response and stream chunk."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from fw.server.protocol.common import SamplingRequest, UsageInfo

#: one text, several texts, one token-id list, or several
PromptField = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(SamplingRequest):
    prompt: PromptField = Field(..., description="Text or token ids; a list of either for a batch.")
    max_tokens: int | None = Field(16, description="Tokens to generate; null fills the context.")
    echo: bool = Field(False, description="Return the prompt before the completion.")
    logprobs: int | None = Field(None, description="Log probabilities of this many top tokens per position.")
    suffix: str | None = Field(None, description="Not supported: fill-in-the-middle is not implemented.")
    add_special_tokens: bool = Field(True, description="Add the tokenizer's special tokens (BOS) to text prompts.")
    return_token_ids: bool | None = Field(
        None, description="Add the prompt's and the completion's token ids to each choice (always on with "
                          "--skip-tokenizer-init).")


class CompletionLogprobs(BaseModel):
    text_offset: list[int] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    tokens: list[str] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None
    #: the stop string or token id that ended the choice (vLLM's extra)
    stop_reason: int | str | None = None
    #: per prompt token, when the request set prompt_logprobs (vLLM's extra)
    prompt_logprobs: list[dict[str, dict[str, Any]] | None] | None = None
    #: with return_token_ids (vLLM's extra): the prompt's ids (first chunk), the choice's (or delta's) ids
    prompt_token_ids: list[int] | None = None
    token_ids: list[int] | None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo


class CompletionChunk(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None
