"""Running a batch: every line through one engine, concurrently, via `fw serve`'s app.

The app is the server's own (``build_app``), reached through httpx's ASGI transport
instead of a socket, so validation, chat templates, sampling defaults, error bodies and
response bodies are exactly what `fw serve` would answer. The app's lifespan runs around
the batch (the periodic stats log), and its metrics registry is what ``--enable-metrics``
serves.

At most ``2 * --max-num-seqs`` lines are in flight: enough to keep the engine's running
batch full with a queue behind it, while a file of a million lines never becomes a
million pending requests. A line refused because the engine's queue is full anyway (a
request with a large ``n`` fills it faster) is retried after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any, Callable, Iterator

import httpx

from fw_builtins.commands.run_batch.config import RunBatchConfig, RunBatchOptions
from fw_builtins.commands.run_batch.lines import BadLine, BatchRequest, answered, failed, parse_line

logger = logging.getLogger("fw.run_batch")

#: retries of a line the engine refused as overloaded (503), and the longest pause between
OVERLOAD_RETRIES = 30
MAX_RETRY_PAUSE_S = 2.0


async def run_batch(config: RunBatchConfig, lines: list[tuple[int, bytes]],
                    engine_factory: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """Load the engine, answer every line, and return one record per line, in order."""
    from fw.server import build_app

    serve_config = config.serve_config()
    engine = engine_factory(serve_config)
    try:
        app = build_app(engine, serve_config)
        with metrics_server(config.batch, app.state.fw.metrics.registry):
            async with app.router.lifespan_context(app):
                return await answer_all(app, lines, 2 * config.scheduler.max_num_seqs)
    finally:
        await engine.shutdown()


async def answer_all(app: Any, lines: list[tuple[int, bytes]], max_in_flight: int) -> list[dict[str, Any]]:
    """One record per ``(line number, line)``, in order, with a progress bar."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    results: list[Any] = [None] * len(lines)
    todo = iter(enumerate(lines))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://fw-batch", timeout=None) as client:
        with logging_redirect_tqdm(), _quiet("httpx"), \
                tqdm(total=len(lines), desc="Running batch", unit="req") as bar:

            async def worker() -> None:
                for index, (number, raw) in todo:  # one shared iterator: each line is taken once
                    results[index] = await answer_line(client, number, raw)
                    bar.update()

            await asyncio.gather(*(worker() for _ in range(min(max_in_flight, len(lines)))))
    return results


async def answer_line(client: httpx.AsyncClient, number: int, raw: bytes) -> dict[str, Any]:
    """The record for line ``number``; never raises, so one bad line cannot end the
    batch. Errors found before the server sees the line name its line number, as such a
    line may have no custom_id to find it by."""
    try:
        request = parse_line(raw)
    except BadLine as bad:
        return failed(bad.custom_id, bad.code, f"line {number}: {bad.message}")
    request_id = f"batch-{uuid.uuid4().hex}"
    try:
        response = await _post(client, request, request_id)
    except Exception as exc:  # noqa: BLE001 - the app answers errors itself; this is a last resort
        logger.exception("request %s (custom_id %r) failed", request_id, request.custom_id)
        return failed(request.custom_id, "internal_error", f"{type(exc).__name__}: {exc}")
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return answered(request.custom_id, response.status_code, request_id, body)


async def _post(client: httpx.AsyncClient, request: BatchRequest, request_id: str) -> httpx.Response:
    attempt = 0
    while True:
        response = await client.post(request.url, json=request.body, headers={"X-Request-Id": request_id})
        if response.status_code != 503 or attempt == OVERLOAD_RETRIES:
            return response
        await asyncio.sleep(min(MAX_RETRY_PAUSE_S, 0.05 * 2 ** attempt))
        attempt += 1


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Hide a logger's INFO lines for a while (httpx logs every in-process request)."""
    quieted = logging.getLogger(logger_name)
    level = quieted.level
    quieted.setLevel(logging.WARNING)
    try:
        yield
    finally:
        quieted.setLevel(level)


@contextlib.contextmanager
def metrics_server(options: RunBatchOptions, registry: Any) -> Iterator[None]:
    """With --enable-metrics, serve ``registry`` on --url:--port while the block runs."""
    if not options.enable_metrics:
        yield
        return
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(options.port, addr=options.url, registry=registry)
    except OSError as exc:
        raise ValueError(f"--port: cannot serve metrics on {options.url}:{options.port}: "
                         f"{exc.strerror or exc}") from None
    logger.info("Prometheus metrics on http://%s:%d/metrics", options.url, server.server_port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
