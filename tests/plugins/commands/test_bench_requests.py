"""How `fw bench serve` cuts a streamed reply into server-sent-event lines."""

from __future__ import annotations

import asyncio

from fw_builtins.commands.bench.requests import _lines


class _Content:
    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces

    async def iter_any(self):
        for piece in self.pieces:
            yield piece


class _Response:
    def __init__(self, pieces: list[bytes]):
        self.content = _Content(pieces)


def lines_of(pieces: list[bytes]) -> list[str]:
    async def collect():
        return [line async for line in _lines(_Response(pieces))]
    return asyncio.run(collect())


def test_lines_split_across_reads_are_joined():
    stream = 'data: {"text": "é ✓"}\n\ndata: [DONE]\n\n'.encode()
    pieces = [stream[i:i + 3] for i in range(0, len(stream), 3)]  # cuts inside characters too
    assert lines_of(pieces) == ['data: {"text": "é ✓"}', "", "data: [DONE]", ""]


def test_a_line_longer_than_aiohttp_reads_whole():
    long = "data: " + "x" * 300_000
    assert lines_of([long[:100_000].encode(), long[100_000:].encode(), b"\n"]) == [long]


def test_an_unterminated_last_line_is_kept():
    assert lines_of([b"data: a\ndata: b"]) == ["data: a", "data: b"]


def test_usage_and_text_in_each_apis_shape():
    from fw_builtins.commands.bench.requests import _text_of, _usage_of

    assert _text_of({"type": "response.output_text.delta", "delta": "ab"}) == "ab"
    assert _text_of({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "cd"}}) == "cd"
    assert _text_of({"type": "content_block_delta", "delta": {"type": "input_json_delta", "partial_json": "{"}}) == ""
    assert _usage_of({"type": "response.completed", "response": {"usage": {"input_tokens": 7, "output_tokens": 3}}}) \
        == {"prompt_tokens": 7, "completion_tokens": 3}
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 2, "cache_read_input_tokens": 16,
                                                            "cache_creation_input_tokens": 0, "output_tokens": 0}}}
    assert _usage_of(start) == {"prompt_tokens": 18}
    assert _usage_of({"type": "message_delta", "usage": {"output_tokens": 5}}) == {"completion_tokens": 5}
