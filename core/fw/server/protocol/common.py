"""Pieces both generation APIs share: sampling fields, stream options, output formats,
usage and the error body."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator

#: an integer a 64-bit field can hold (seeds reach torch as int64; anything larger is a
#: client mistake, refused with a 400 rather than an overflow deep in the engine)
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
#: a token id: a JSON integer only (false, "0" and 0.0 are not token 0)
TokenId = Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)]


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are errors, never ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)


class StreamOptions(RequestModel):
    include_usage: bool | None = Field(False, description="Send a final chunk with the usage of the whole request.")
    continuous_usage_stats: bool | None = Field(False, description="Carry the usage so far in every chunk.")


class JsonSchemaSpec(RequestModel):
    name: str | None = None
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(RequestModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StructuredOutputsSpec(RequestModel):
    """The ``structured_outputs`` object: set exactly one constraint."""

    json_: str | dict[str, Any] | None = Field(None, alias="json")
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    whitespace_pattern: str | None = None
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False


class LogitsProcessorConstructor(RequestModel):
    """vLLM's object form of a per-request logits processor; fw processors take their
    per-request arguments in ``vllm_xargs``, so only the name is used."""

    qualname: str
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None


#: one ``vllm_xargs`` value, as vLLM types them
XargValue = str | int | float | bool | list[str | int | float | bool] | None


class SamplingRequest(RequestModel):
    """The fields the completions and chat APIs share: OpenAI's, then vLLM's extras."""

    model: str | None = Field(None, description="One of the served model names; defaults to the first.")
    frequency_penalty: float | None = 0.0
    presence_penalty: float | None = 0.0
    logit_bias: dict[str, float] | None = None
    n: Int64 = Field(1, description="How many choices to generate for each prompt.")
    seed: Int64 | None = Field(None, description="A 64-bit signed integer, as OpenAI's.")
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = Field(None, description="Accepted for compatibility; not used.")
    response_format: ResponseFormat | None = None
    # vLLM's extra sampling parameters
    best_of: Int64 | None = Field(None, description="Only best_of = n is supported.")
    use_beam_search: bool = Field(False, description="Beam search with n beams; the n best are the choices.")
    top_k: Int64 | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    length_penalty: float = Field(1.0, description="Beam search: scores are divided by length ** length_penalty.")
    early_stopping: bool | Literal["never"] = Field(
        False, description='Beam search: stop once n beams are finished (true), when no better one is likely '
                           '(false), or when none can be better ("never").')
    stop_token_ids: list[TokenId] | None = None
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: Int64 = 0
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: Int64 | None = Field(None, ge=1, description="Keep only the last N prompt tokens.")
    allowed_token_ids: list[TokenId] | None = None
    bad_words: list[str] | None = None
    prompt_logprobs: Int64 | None = None
    priority: Int64 = Field(0, description="Lower runs first under --scheduling-policy priority.")
    request_id: str | None = Field(None, description="The id the server uses for this request.")
    return_tokens_as_token_ids: bool | None = Field(
        None, description="Represent logprob tokens as 'token_id:{id}' (defaults to the server option)."
    )
    # structured outputs: vLLM's guided_* names and the newer object
    guided_json: str | dict[str, Any] | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None
    guided_decoding_backend: str | None = Field(
        None, description="The structured-output backend for this request: xgrammar, guidance, auto, or a "
                          "plugin's (default: the server's --guided-decoding-backend).")
    guided_whitespace_pattern: str | None = None
    structured_outputs: StructuredOutputsSpec | None = None
    # logits processors (fw.logits_processors)
    vllm_xargs: dict[str, XargValue] | None = Field(
        None, description="Arguments for the server's logits processors (--logits-processors), e.g. "
                          '{"target_token": 42}; a key no enabled processor reads is refused.')
    logits_processors: list[str | LogitsProcessorConstructor] | None = Field(
        None, description="Logits processors for this request only (import paths), allowed when they match "
                          "the server's --logits-processor-pattern.")

    @field_validator("logits_processors")
    @classmethod
    def _processor_names(cls, value: list[str | LogitsProcessorConstructor] | None) -> list[str] | None:
        """The names; constructor arguments are refused (a processor reads vllm_xargs)."""
        if value is None:
            return None
        names = []
        for item in value:
            if isinstance(item, LogitsProcessorConstructor):
                if item.args or item.kwargs:
                    raise ValueError("constructor args/kwargs are not supported: fw logits processors take "
                                     "per-request arguments in vllm_xargs")
                item = item.qualname
            names.append(item)
        return names


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
