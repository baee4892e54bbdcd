"""POST /v1/completions: request, response and stream chunk."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field

from fw.server.protocol.common import Int64, SamplingRequest, TokenId, UsageInfo

#: one text, several texts, one token-id list, or several. Tried left to right: pydantic's
#: default "smart" union validates a long token list against every member (0.5 s for 2 M
#: ids, on the event loop) and would take [0.0] or [false] as token ids
PromptField = Annotated[Union[str, list[str], list[TokenId], list[list[TokenId]]],
                        Field(union_mode="left_to_right")]


class CompletionRequest(SamplingRequest):
    prompt: PromptField = Field(..., description="Text or token ids; a list of either for a batch.")
    max_tokens: Int64 | None = Field(16, description="Tokens to generate; null fills the context.")
    echo: bool = Field(False, description="Return the prompt before the completion.")
    logprobs: Int64 | None = Field(None, description="Log probabilities of this many top tokens per position.")
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
