"""Bodies of /v1/embeddings, /pooling and /classify, in OpenAI's and vLLM's shapes."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, Field

from fw.server.protocol.common import Int64, RequestModel, TokenId

#: a string, strings, token ids, or lists of token ids
Input = Union[str, list[str], list[TokenId], list[list[TokenId]]]


class PoolingFields(RequestModel):
    """What every pooling API takes besides its input."""

    model: str | None = Field(None, description="One of the served model names; defaults to the first.")
    user: str | None = Field(None, description="Accepted for compatibility; not used.")
    truncate_prompt_tokens: Int64 | None = Field(
        None, ge=-1, description="Cut each input to this many tokens (-1: the context length); text keeps the "
                                 "tokenizer's special tokens, token ids their last N. Without it, an input longer "
                                 "than the context is an error.")
    add_special_tokens: bool = Field(True, description="Add the tokenizer's special tokens ([CLS], [SEP]) to text.")
    priority: Int64 = Field(0, description="Lower runs first under --scheduling-policy priority.")
    request_id: str | None = Field(None, description="The id the server uses for this request.")


class EmbeddingRequest(PoolingFields):
    input: Input = Field(description="Text, texts, token ids or lists of token ids to embed.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: JSON numbers; base64: each embedding's little-endian float32 bytes.")
    dimensions: Int64 | None = Field(
        None, description="Matryoshka models only: keep the first N dimensions (the result is normalised again).")
    normalize: bool | None = Field(None, description="L2-normalise the embeddings (default: the model's).")


class EmbeddingData(BaseModel):
    index: int
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str


class PoolingUsage(BaseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0
    completion_tokens: int = 0


class EmbeddingResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[EmbeddingData]
    usage: PoolingUsage


class PoolingRequest(EmbeddingRequest):
    task: Literal["embed", "classify", "encode"] = Field(
        "encode", description="encode: every token's hidden state; embed: the embedding; classify: class "
                              "probabilities.")
    activation: bool | None = Field(None, description="classify: softmax (sigmoid for one label) over the logits.")


class PoolingData(BaseModel):
    index: int
    object: Literal["pooling"] = "pooling"
    data: list[list[float]] | list[float] | str


class PoolingResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[PoolingData]
    usage: PoolingUsage


class ClassificationRequest(PoolingFields):
    input: Input = Field(description="Text, texts, token ids or lists of token ids to classify.")
    activation: bool | None = Field(None, description="Softmax (sigmoid for one label) over the logits; false "
                                                      "returns the logits.")


class ClassificationData(BaseModel):
    index: int
    label: str
    probs: list[float]
    num_classes: int


class ClassificationResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ClassificationData]
    usage: PoolingUsage
