"""A small OpenAI-compatible server for testing the client commands without an engine.

It speaks the parts of the API that `fw chat`, `fw complete` and `fw bench serve` use,
the way fw's own server does: one model at /v1/models, streamed (SSE) and plain chat and
text completions with `usage`, streamed responses (/v1/responses, which count the turns
of a previous_response_id chain), and OpenAI-style error bodies. Its replies say how many
messages it received, so a test can see whether a conversation's history was sent. It
records every request (body and Authorization header) for the test to inspect.

Triggers: an unknown model gives 404; a message or prompt containing "please fail"
gives 400.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

MODEL = "fake-model"
TOKEN_DELAY_S = 0.001


@dataclass
class Recorded:
    path: str
    body: dict
    authorization: str | None


@dataclass
class FakeServer:
    port: int
    requests: list[Recorded] = field(default_factory=list)
    #: response id -> its turn number in a previous_response_id chain
    turns: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def bodies(self, path: str) -> list[dict]:
        return [r.body for r in self.requests if r.path == path]


def _error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={
        "error": {"message": message, "type": kind, "param": param, "code": status}})


def _chat_reply(messages: list[dict]) -> str:
    last = messages[-1]["content"] if messages else ""
    noun = "message" if len(messages) == 1 else "messages"
    return f"I have seen {len(messages)} {noun}; the last was {last!r}."


def _tokens(text: str, body: dict) -> list[str]:
    """The reply split into 'tokens' (words); with ignore_eos, exactly max_tokens of them."""
    words = [w + " " for w in text.split(" ") if w]  # not at U+2028: a token may hold it
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if body.get("ignore_eos") and limit:
        return [f"t{i} " for i in range(limit)]
    return words[:limit] if limit else words


def make_app(server: FakeServer) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [
            {"id": MODEL, "object": "model", "created": 0, "owned_by": "fw"}]}

    async def handle(request: Request, chat: bool):
        body = await request.json()
        server.requests.append(Recorded(request.url.path, body, request.headers.get("authorization")))
        if body.get("model") != MODEL:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model")
        if chat:
            prompt_text = " ".join(m["content"] for m in body["messages"])
            text = _chat_reply(body["messages"])
        else:
            prompt_text = body["prompt"]
            text = f"and then the story of '{prompt_text}' went on."
        if "please fail" in prompt_text:
            return _error(400, "you asked\nme to fail", "BadRequestError", "messages" if chat else "prompt")
        tokens = _tokens(text, body)
        usage = {"prompt_tokens": len(prompt_text.split()), "completion_tokens": len(tokens),
                 "total_tokens": len(prompt_text.split()) + len(tokens)}
        kind = "chat.completion" if chat else "text_completion"
        if not body.get("stream"):
            choice = ({"index": 0, "message": {"role": "assistant", "content": "".join(tokens)},
                       "finish_reason": "stop"} if chat else
                      {"index": 0, "text": "".join(tokens), "finish_reason": "stop"})
            return {"id": "x", "object": kind, "created": 0, "model": MODEL,
                    "choices": [choice], "usage": usage}
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        return StreamingResponse(_sse(tokens, chat, usage if include_usage else None),
                                 media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await handle(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await handle(request, chat=False)

    @app.post("/v1/responses")
    async def responses(request: Request):
        body = await request.json()
        server.requests.append(Recorded(request.url.path, body, request.headers.get("authorization")))
        if "please fail" in body["input"]:
            return _error(400, "you asked me to fail", "BadRequestError", "input")
        turn = server.turns.get(body.get("previous_response_id"), 0) + 1
        response_id = f"resp_{len(server.requests)}"
        server.turns[response_id] = turn
        text = f"Turn {turn}; you said {body['input']!r}."
        return StreamingResponse(_response_events(response_id, text), media_type="text/event-stream")

    return app


async def _sse(tokens: list[str], chat: bool, usage: dict | None):
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list, **extra) -> str:
        chunk = {"id": "x", "object": kind, "created": 0, "model": MODEL, "choices": choices, **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"  # as fw's server: U+2028 as it is

    if chat:
        yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for token in tokens:
        await asyncio.sleep(TOKEN_DELAY_S)
        piece = {"delta": {"content": token}} if chat else {"text": token}
        yield event([{"index": 0, **piece, "finish_reason": None}])
    finish = {"delta": {}} if chat else {"text": ""}
    yield event([{"index": 0, **finish, "finish_reason": "stop"}])
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"


async def _response_events(response_id: str, text: str):
    def event(payload: dict) -> str:
        return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n"

    yield event({"type": "response.created", "response": {"id": response_id, "status": "in_progress"}})
    for word in text.split(" "):
        await asyncio.sleep(TOKEN_DELAY_S)
        yield event({"type": "response.output_text.delta", "delta": word + " "})
    yield event({"type": "response.completed", "response": {"id": response_id, "status": "completed"}})


class RunningServer:
    """The fake server on a free loopback port, in a background thread."""

    def __init__(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.state = FakeServer(port=sock.getsockname()[1])
        config = uvicorn.Config(make_app(self.state), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start within 10 s")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
