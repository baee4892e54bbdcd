"""One benchmark request: stream a completion and time each piece of the reply.

Times are taken when a chunk with text arrives: the first gives the time to first token,
the gaps between the rest the inter-token latencies; the end-to-end latency runs from
sending the request to the end of the stream. Token counts come from the
server's ``usage`` (asked for with ``stream_options.include_usage`` in the chat and
completions APIs; the Responses and Messages APIs always send it); a server that
sends none is counted one token per text chunk. The Responses and Messages streams end
with their last event rather than ``[DONE]``.

An embeddings request is not streamed: its latency is the whole request (reported as its
time to first token too, as vLLM's benchmark does), its token count the server's usage.

The client is aiohttp, as in vLLM's benchmark: it runs on the same cores as the server it
measures, and its C HTTP parser reads a stream for about half the CPU time of httpx's
(0.6–0.75 s against 1.3–1.8 s for 64 requests x 128 tokens at concurrency 32).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp

from fw_builtins.commands.bench.datasets import Prompt
from fw_builtins.commands.client import DONE, ServerError, ServerUnreachable, SSELines, error_text, sse_event


@dataclass
class Result:
    success: bool = False
    error: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft: float = 0.0  # seconds
    latency: float = 0.0  # seconds, request sent to end of stream
    itl: list[float] = field(default_factory=list)  # seconds between text chunks
    text: str = ""
    #: prompts the request embedded (/v1/embeddings), else 0
    inputs: int = 0


def request_body(endpoint: str, model: str, prompt: Prompt, ignore_eos: bool) -> dict:
    """One streamed request on ``endpoint``, with the usage it needs reported."""
    body: dict = {"model": model, "temperature": 0.0, "stream": True}
    user = [{"role": "user", "content": prompt.text}]
    if endpoint.endswith("/chat/completions"):
        body.update(messages=user, max_completion_tokens=prompt.output_len,
                    stream_options={"include_usage": True})
    elif endpoint.endswith("/responses"):
        body.update(input=prompt.text, max_output_tokens=prompt.output_len, store=False)
    elif endpoint.endswith("/messages"):
        body.update(messages=user, max_tokens=prompt.output_len)
    else:
        body.update(prompt=prompt.text, max_tokens=prompt.output_len, stream_options={"include_usage": True})
    if ignore_eos:
        body["ignore_eos"] = True
    return body


def embedding_body(model: str, prompts: list[Prompt]) -> dict:
    """One /v1/embeddings request for a group of prompts (base64: what the openai client asks)."""
    return {"model": model, "input": [p.text for p in prompts], "encoding_format": "base64"}


async def send_embeddings(session: aiohttp.ClientSession, url: str, body: dict) -> Result:
    result = Result()
    start = time.perf_counter()
    try:
        async with session.post(url, json=body) as response:
            raw = await response.read()
            if response.status >= 400:
                result.error = error_text(raw, response.status)
                return result
            answer = json.loads(raw)
    except aiohttp.ClientConnectorError:
        result.error = str(ServerUnreachable(url))
        return result
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        result.error = str(exc) or type(exc).__name__
        return result
    result.latency = result.ttft = time.perf_counter() - start
    if len(answer.get("data") or ()) != len(body["input"]):
        result.error = f"{len(body['input'])} inputs but {len(answer.get('data') or ())} embeddings"
        return result
    result.prompt_tokens = (answer.get("usage") or {}).get("prompt_tokens", 0)
    result.inputs = len(body["input"])
    result.success = True
    return result


def _text_of(event: dict) -> str:
    """The generated text an event carries, in any of the four APIs' shapes."""
    kind = event.get("type")
    if kind == "response.output_text.delta":
        return event.get("delta") or ""
    if kind == "content_block_delta":
        return (event.get("delta") or {}).get("text") or ""
    choices = event.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    return choice.get("text") or (choice.get("delta") or {}).get("content") or ""


def _usage_of(event: dict) -> dict:
    """The token counts an event carries, as prompt_tokens / completion_tokens: the chat
    and completions APIs' final usage chunk, the Responses API's final response, the
    Messages API's message_start (the prompt) and message_delta (the output)."""
    kind = event.get("type")
    if kind in ("response.completed", "response.incomplete"):
        usage = (event.get("response") or {}).get("usage") or {}
        return {"prompt_tokens": usage.get("input_tokens", 0), "completion_tokens": usage.get("output_tokens", 0)}
    if kind in ("message_start", "message_delta"):
        usage = (event.get("message") or {}).get("usage") if kind == "message_start" else event.get("usage")
        usage = usage or {}
        counts = {}
        if "input_tokens" in usage:
            counts["prompt_tokens"] = sum(usage.get(k) or 0 for k in (
                "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        if kind == "message_delta":
            counts["completion_tokens"] = usage.get("output_tokens", 0)
        return counts
    return event.get("usage") or {}


async def _lines(response: aiohttp.ClientResponse):
    """The stream's lines, however long (aiohttp's own line reader caps them)."""
    splitter = SSELines()
    async for data in response.content.iter_any():
        for line in splitter.feed(data):
            yield line
    for line in splitter.end():
        yield line


async def send(session: aiohttp.ClientSession, url: str, body: dict) -> Result:
    result = Result()
    pieces: list[str] = []
    chunks = 0
    usage: dict = {}
    start = last = time.perf_counter()
    try:
        async with session.post(url, json=body) as response:
            if response.status >= 400:
                result.error = error_text(await response.read(), response.status)
                return result
            async for line in _lines(response):
                event = sse_event(line)
                if event is DONE:
                    break
                if event is None:
                    continue
                now = time.perf_counter()
                usage = {**usage, **_usage_of(event)}
                text = _text_of(event)
                if not text:
                    continue
                if chunks == 0:
                    result.ttft = now - start
                else:
                    result.itl.append(now - last)
                last = now
                chunks += 1
                pieces.append(text)
            result.latency = time.perf_counter() - start
    except aiohttp.ClientConnectorError:
        result.error = str(ServerUnreachable(url))
        return result
    except (aiohttp.ClientError, asyncio.TimeoutError, ServerError) as exc:
        result.error = str(exc) or type(exc).__name__
        return result
    result.text = "".join(pieces)
    result.prompt_tokens = usage.get("prompt_tokens", 0)
    result.output_tokens = usage.get("completion_tokens", chunks)
    result.success = True
    return result
