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
