"""Bodies of /score (vLLM's) and /rerank (Jina's and Cohere's shape, as vLLM serves it)."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, Field

from fw.server.protocol.common import Int64
from fw.server.protocol.pooling import PoolingFields, PoolingUsage


class ScoreRequest(PoolingFields):
    text_1: Union[str, list[str]] = Field(description="The first text of each pair: one for all, or one per "
                                                      "text_2.")
    text_2: Union[str, list[str]] = Field(description="The second text of each pair.")
    activation: bool | None = Field(None, description="Cross-encoders: a sigmoid over the logit (default true).")


class ScoreData(BaseModel):
    index: int
    object: Literal["score"] = "score"
    score: float


class ScoreResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[ScoreData]
    usage: PoolingUsage


class RerankRequest(PoolingFields):
    query: str = Field(description="What the documents are ranked against.")
    documents: list[str] = Field(description="The texts to rank.")
    top_n: Int64 | None = Field(None, ge=0, description="Return the best N (0 or unset: all).")
    return_documents: bool = Field(True, description="Include each document's text in its result.")


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    document: RerankDocument | None = None
    relevance_score: float


class RerankUsage(BaseModel):
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    model: str
    usage: RerankUsage
    results: list[RerankResult]


__all__ = ["PoolingUsage", "RerankRequest", "RerankResponse", "ScoreRequest", "ScoreResponse"]
