"""OpenTelemetry traces of requests (``--otlp-traces-endpoint``), in vLLM's shape.

Each finished generation request becomes one span named ``llm_request`` with vLLM's
``gen_ai.*`` attributes (model, request id, sampling settings, token counts, latencies),
continuing the client's trace when the request carries a W3C ``traceparent`` header.
Spans go through the official SDK: a batch processor and an OTLP exporter, whose
protocol comes from ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` (or
``OTEL_EXPORTER_OTLP_PROTOCOL``; ``http/protobuf`` by default, ``grpc`` when its exporter
package is installed). The other standard variables (``OTEL_SERVICE_NAME``,
``OTEL_EXPORTER_OTLP_HEADERS``, timeouts) are read by the SDK itself.
"""

from __future__ import annotations

import contextvars
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from fw.engine.outputs import RequestOutput
from fw.engine.sampling_params import SamplingParams

SPAN_NAME = "llm_request"


@dataclass
class Arrival:
    """What the tracing middleware saw of the HTTP request."""

    headers: dict[str, str]
    wall_ns: int


#: the current HTTP request's arrival, set by ``TracingMiddleware`` for the engine stream
ARRIVAL: contextvars.ContextVar[Arrival | None] = contextvars.ContextVar("fw_trace_arrival", default=None)


def span_exporter(endpoint: str) -> Any:
    """The OTLP exporter for ``endpoint`` in the protocol the environment asks for."""
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                              os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ValueError("--otlp-traces-endpoint: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc needs "
                             "`pip install opentelemetry-exporter-otlp-proto-grpc`") from None
        return OTLPSpanExporter(endpoint=endpoint)
    if protocol != "http/protobuf":
        raise ValueError(f"--otlp-traces-endpoint: unsupported OTLP protocol {protocol!r} (use http/protobuf or grpc)")
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPExporter
    except ImportError:
        raise ValueError("--otlp-traces-endpoint needs `pip install 'fw[tracing]'` (opentelemetry-sdk and "
                         "opentelemetry-exporter-otlp-proto-http)") from None
    if urlparse(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"  # a collector's base URL: its traces path
    return HTTPExporter(endpoint=endpoint)


class RequestTracer:
    """Owns the tracer provider; ``record`` turns one finished request into a span."""

    def __init__(self, endpoint: str, exporter: Any | None = None):
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise ValueError("--otlp-traces-endpoint needs `pip install 'fw[tracing]'` (opentelemetry-sdk)") from None
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                              "fw")}))
        self.provider.add_span_processor(BatchSpanProcessor(exporter or span_exporter(endpoint)))
        self.tracer = self.provider.get_tracer("fw.server")
        self.propagator = TraceContextTextMapPropagator()

    def record(self, *, request_id: str, model: str, params: SamplingParams, prompt_tokens: int,
               last: RequestOutput, completion_tokens: int) -> None:
        from opentelemetry.trace import SpanKind

        arrival = ARRIVAL.get()
        now_ns = time.time_ns()
        parent = self.propagator.extract(arrival.headers) if arrival else None
        start_ns = arrival.wall_ns if arrival else now_ns
        attributes: dict[str, Any] = {
            "gen_ai.response.model": model, "gen_ai.request.id": request_id,
            "gen_ai.request.temperature": params.temperature, "gen_ai.request.top_p": params.top_p,
            "gen_ai.request.max_tokens": params.max_tokens or 0, "gen_ai.request.n": params.n,
            "gen_ai.usage.num_sequences": len(last.outputs) or params.n,
            "gen_ai.usage.prompt_tokens": prompt_tokens, "gen_ai.usage.completion_tokens": completion_tokens,
            "gen_ai.latency.e2e": (now_ns - start_ns) / 1e9,
        }
        attributes.update(_latencies(last))
        # A sampling field the request left to the model's defaults is None here (the
        # engine's admission resolved it): the span leaves it out rather than guess.
        attributes = {key: value for key, value in attributes.items() if value is not None}
        span = self.tracer.start_span(SPAN_NAME, context=parent, kind=SpanKind.SERVER, start_time=start_ns,
                                      attributes=attributes)
        span.end(end_time=now_ns)

    def shutdown(self) -> None:
        """Send what is still batched, then stop."""
        self.provider.shutdown()


def _latencies(out: RequestOutput) -> dict[str, float]:
    metrics = out.metrics
    if metrics is None:
        return {}
    values = {}
    if metrics.first_scheduled_time is not None:
        values["gen_ai.latency.time_in_queue"] = metrics.first_scheduled_time - metrics.arrival_time
    if metrics.first_token_time is not None:
        values["gen_ai.latency.time_to_first_token"] = metrics.first_token_time - metrics.arrival_time
    if metrics.first_scheduled_time is not None and metrics.finished_time is not None:
        values["gen_ai.latency.time_in_model_inference"] = metrics.finished_time - metrics.first_scheduled_time
    if metrics.model_forward_time is not None:
        values["gen_ai.latency.time_in_model_forward"] = metrics.model_forward_time
    if metrics.model_execute_time is not None:
        values["gen_ai.latency.time_in_model_execute"] = metrics.model_execute_time
    return values


class TracingMiddleware:
    """Notes each HTTP request's headers and arrival time for its span."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        token = ARRIVAL.set(Arrival(headers, time.time_ns()))
        try:
            await self.app(scope, receive, send)
        finally:
            ARRIVAL.reset(token)
