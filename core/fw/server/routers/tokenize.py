"""POST /tokenize, POST /detokenize and (opt-in) GET /get_tokenizer_info, in vLLM's shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from fw.chat import resolve_chat_template
from fw.errors import InvalidParameterError
from fw.server.chat_prompt import message_dicts
from fw.server.context import ServerContext, get_context
from fw.server.json_body import StrictJSONRoute
from fw.server.preprocess import render, tokenize as tokenize_text
from fw.server.protocol.models import (
    DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse,
)
from fw.server.routers import ERROR_RESPONSES

router = APIRouter(tags=["Tokenizer"], route_class=StrictJSONRoute)
info_router = APIRouter(tags=["Tokenizer"])


@router.post("/tokenize", response_model=TokenizeResponse, responses=ERROR_RESPONSES)
async def tokenize(body: TokenizeRequest, ctx: ServerContext = Depends(get_context)) -> TokenizeResponse:
    """Token ids of a prompt, or of chat messages rendered with the chat template."""
    ctx.resolve_model(body.model)  # adapters share the base model's tokenizer
    if body.messages is not None:
        text = await render(ctx, body, message_dicts(body))
        special, param = bool(body.add_special_tokens), "messages"
    else:
        text = body.prompt or ""
        special, param = body.add_special_tokens is not False, "prompt"
    ids = await tokenize_text(ctx, text, special, param=param)
    strs = (await ctx.preprocess.run(ctx.tokenizer.convert_ids_to_tokens, ids)) if body.return_token_strs else None
    return TokenizeResponse(count=len(ids), max_model_len=ctx.model_info.max_model_len, tokens=ids,
                            token_strs=list(strs) if strs is not None else None)


@router.post("/detokenize", response_model=DetokenizeResponse, responses=ERROR_RESPONSES)
async def detokenize(body: DetokenizeRequest, ctx: ServerContext = Depends(get_context)) -> DetokenizeResponse:
    ctx.resolve_model(body.model)
    vocab = ctx.model_info.vocab_size
    bad = next((t for t in body.tokens if not 0 <= t < vocab), None)
    if bad is not None:
        raise InvalidParameterError("tokens", f"token id {bad} is outside the vocabulary (0..{vocab - 1})")
    tokenizer = ctx.require_tokenizer("tokens")
    return DetokenizeResponse(prompt=await ctx.preprocess.run(tokenizer.decode, body.tokens))


@info_router.get("/get_tokenizer_info", responses={c: ERROR_RESPONSES[c] for c in (401, 500)})
async def tokenizer_info(ctx: ServerContext = Depends(get_context)) -> dict[str, Any]:
    """The tokenizer's configuration, chat template included (--enable-tokenizer-info-endpoint)."""
    tok = ctx.require_tokenizer("tokenizer")
    info: dict[str, Any] = {
        "tokenizer_class": type(tok).__name__,
        "vocab_size": ctx.model_info.vocab_size,
        "model_max_length": ctx.model_info.max_model_len,
        "chat_template": ctx.chat_template or resolve_chat_template(tok),
    }
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        value = getattr(tok, name, None)
        if value is not None:
            info[name] = str(value)
    added = getattr(tok, "added_tokens_decoder", None) or {}
    info["added_tokens_decoder"] = {str(i): str(t) for i, t in added.items()}
    return info
