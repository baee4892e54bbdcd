"""How a response reports itself, from the request and the server's Frontend options
(shared by the chat and completions views)."""

from __future__ import annotations

from typing import Any, NamedTuple


class ResponseOptions(NamedTuple):
    #: logprob tokens written as "token_id:N" (--return-tokens-as-token-ids, or per request)
    as_ids: bool
    #: usage carries prompt_tokens_details (--enable-prompt-tokens-details)
    details: bool
    #: a final usage chunk ends the stream (stream_options, or --enable-force-include-usage)
    include_usage: bool
    #: every chunk carries usage so far (stream_options.continuous_usage_stats)
    continuous_usage: bool


def response_options(frontend: Any, body: Any) -> ResponseOptions:
    stream = body.stream_options
    as_ids = body.return_tokens_as_token_ids
    return ResponseOptions(
        as_ids=frontend.return_tokens_as_token_ids if as_ids is None else as_ids,
        details=frontend.enable_prompt_tokens_details,
        include_usage=bool(stream and stream.include_usage) or frontend.enable_force_include_usage,
        continuous_usage=bool(stream and stream.continuous_usage_stats),
    )
