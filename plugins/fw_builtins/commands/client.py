"""What the client commands share: the options naming a server (`fw chat`, `fw complete`),
a small OpenAI-compatible HTTP client, server-sent-events parsing and one-line errors
(also used by `fw bench serve`).

The client is httpx and a few lines of SSE parsing rather than the `openai` package,
which takes over a second to import: these commands must start fast, and they need only
four calls (list models, stream a chat, a response or a text completion).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, NoReturn

import click
from pydantic import field_validator

from fw.config import ConfigGroup, option

DEFAULT_URL = "http://localhost:8000/v1"


class ServerOptions(ConfigGroup):
    """The server and model to talk to; `fw chat` and `fw complete` extend it."""

    url: str = option(DEFAULT_URL, "URL of the running OpenAI-compatible API server.")
    model_name: str | None = option(
        None, "The model to use; when not given, the first one the server lists at /models.")
    api_key: str | None = option(
        None, "API key, sent as a Bearer token; when not given, $OPENAI_API_KEY, else 'EMPTY'.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")

    def resolved_api_key(self) -> str:
        return self.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"


class ServerUnreachable(Exception):
    """No connection could be made: the server is not running or the URL is wrong."""

    def __init__(self, url: str):
        self.url = url
        super().__init__(f"cannot reach {url} — is `fw serve` running?")


class ServerError(Exception):
    """The server answered with an error; the message is the server's own, on one line."""


def error_text(body: bytes | str, status: int) -> str:
    """The server's error message from an OpenAI-style (or FastAPI) error body, one line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    message: Any = None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or data.get("detail") or data.get("message")
    if message is None:
        message = text.strip() or "no error message"
    line = " ".join(str(message).split())
    if len(line) > 300:
        line = line[:297] + "..."
    return f"server error ({status}): {line}" if status else f"server error: {line}"


#: what ``sse_event`` returns for the ``data: [DONE]`` line that ends a stream
DONE = object()


def sse_event(line: str) -> Any:
    """The JSON chunk on one server-sent-events line, ``DONE`` at the end marker, None for
    lines that carry no data; a streamed error raises ``ServerError``."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return DONE
    try:
        event = json.loads(payload)
    except ValueError:
        raise ServerError(f"the server streamed something that is not JSON: {payload[:80]!r}") from None
    if isinstance(event, dict) and ("error" in event or event.get("type") == "error"):
        raise ServerError(error_text(payload, 0))  # the Responses API's error event has no "error" key
    return event


class SSELines:
    """A byte stream cut into server-sent-events lines: at line feeds only. A JSON string
    may hold U+2028 or U+0085 unescaped (fw's and vLLM's servers send them as they are);
    ``str.splitlines`` and httpx's ``iter_lines`` would cut an event in two there."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        return [line.removesuffix(b"\r").decode("utf-8") for line in lines]

    def end(self) -> list[str]:
        rest, self._pending = self._pending, b""
        return [rest.decode("utf-8")] if rest else []

    @classmethod
    def of(cls, chunks: Iterable[bytes]) -> Iterator[str]:
        """The lines of a whole (blocking) byte stream."""
        splitter = cls()
        for data in chunks:
            yield from splitter.feed(data)
        yield from splitter.end()


def sse_events(lines: Iterator[str]) -> Iterator[dict]:
    """The JSON chunks of a server-sent-events stream, up to ``data: [DONE]``."""
    for line in lines:
        event = sse_event(line)
        if event is DONE:
            return
        if event is not None:
            yield event


class Client:
    """A blocking client for one server; every call maps transport failures to
    ``ServerUnreachable`` and error statuses to ``ServerError``."""

    def __init__(self, options: ServerOptions):
        import httpx

        # fw's CLI logs at INFO; a line per HTTP request would be noise between replies.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._httpx = httpx
        self.url = options.url
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {options.resolved_api_key()}"},
            timeout=httpx.Timeout(600.0, connect=10.0),
        )

    def first_model(self, model_flag: str = "--model-name") -> str:
        """The first model the server lists; errors suggest ``model_flag`` instead."""
        with self._request("GET", "/models") as response:
            try:
                models = json.loads(response.read())["data"]
            except (ValueError, KeyError, TypeError):
                raise ServerError(f"{self.url}/models did not answer with a model list; is "
                                  f"{self.url} an OpenAI-compatible API root (…/v1)?") from None
        if not models:
            raise ServerError(f"{self.url}/models lists no models; name one with {model_flag}")
        return models[0]["id"]

    def stream_chat(self, model: str, messages: list[dict]) -> Iterator[str]:
        body = {"model": model, "messages": messages, "stream": True}
        for event in self._stream("/chat/completions", body):
            for choice in event.get("choices") or []:
                yield (choice.get("delta") or {}).get("content") or ""

    def stream_response(self, model: str, text: str, *, previous_response_id: str | None,
                        instructions: str | None, ids: list[str]) -> Iterator[str]:
        """A Responses API turn's text; the response's id is appended to ``ids``."""
        body: dict[str, Any] = {"model": model, "input": text, "stream": True}
        if previous_response_id is not None:
            body["previous_response_id"] = previous_response_id
        if instructions is not None:
            body["instructions"] = instructions  # not carried over from the previous response
        for event in self._stream("/responses", body):
            if event.get("type") == "response.created":
                ids.append(event["response"]["id"])
            elif event.get("type") == "response.output_text.delta":
                yield event.get("delta") or ""

    def stream_completion(self, model: str, prompt: str) -> Iterator[str]:
        body = {"model": model, "prompt": prompt, "stream": True}
        for event in self._stream("/completions", body):
            for choice in event.get("choices") or []:
                yield choice.get("text") or ""

    def _stream(self, path: str, body: dict) -> Iterator[dict]:
        with self._request("POST", path, json=body) as response:
            yield from sse_events(SSELines.of(response.iter_bytes()))

    @contextmanager
    def _request(self, method: str, path: str, **kwargs: Any):
        httpx = self._httpx
        try:
            with self.http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    raise ServerError(error_text(response.read(), response.status_code))
                yield response
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise ServerUnreachable(self.url) from None
        except httpx.TransportError as exc:
            raise ServerError(f"the connection to {self.url} failed: {exc or type(exc).__name__}") from None


def fail(message: str) -> NoReturn:
    """Print one line on stderr and exit with status 1."""
    click.echo(message, err=True)
    sys.exit(1)


@contextmanager
def fatal_errors():
    """Turn a failed call into one line on stderr and exit status 1; Ctrl-C ends quietly."""
    try:
        yield
    except (ServerUnreachable, ServerError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        click.echo()


def echo_stream(pieces: Iterator[str]) -> str:
    """Print a reply as it arrives and return the whole of it."""
    reply = []
    for piece in pieces:
        if piece:
            reply.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "".join(reply)


def read_line() -> str | None:
    """One line from the user at a ``> `` prompt; None at end of input (Ctrl-D)."""
    try:
        import readline  # noqa: F401 - importing it gives input() arrow keys and history
    except ImportError:
        pass
    try:
        return input("> ")
    except EOFError:
        click.echo()
        return None
