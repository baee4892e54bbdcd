"""Small readers shared by the server tests."""

from __future__ import annotations

import json
from typing import Any

from fw.config.options import build_bundle
from fw.config.serve import ServeConfig


def serve_config(**options: Any) -> ServeConfig:
    """A test server's options: a free port, quiet logs, plus ``options``."""
    values = {"port": 0, "disable_log_stats": True, "disable_uvicorn_access_log": True,
              "uvicorn_log_level": "warning", **options}
    return build_bundle(ServeConfig, values)


def sse_events(response) -> list:
    """The JSON payloads of an SSE body, and the literal [DONE] at the end."""
    events = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def metric(live, name: str, **labels: str) -> float:
    """One sample from the server's /metrics (0 when absent)."""
    with live.http() as http:
        text = http.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def raw_http(url: str, method: str, path: str, *, headers: dict[str, str],
             chunks=(), timeout: float = 30) -> tuple[int, bytes, int]:
    """One HTTP/1.1 request over a plain socket, sending ``chunks`` (bytes) one by one
    until the server answers or closes: ``(status, body, bytes of chunks sent)``. Unlike an
    HTTP client it can send a body with a Content-Length it never completes, and it stops
    sending when the server refuses early."""
    import select
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    head = f"{method} {path} HTTP/1.1\r\nHost: {parts.hostname}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (or closed) before the body was sent
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        response = b""
        while b"\r\n\r\n" not in response or not _complete(response):
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            response += data
    status = int(response.split(b" ", 2)[1]) if response else 0
    return status, response.partition(b"\r\n\r\n")[2], sent


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def chunked(pieces):
    """``pieces`` in HTTP chunked transfer encoding, then the last chunk."""
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"
