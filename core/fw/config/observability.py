"""ObservabilityConfig: OpenTelemetry traces of requests (metrics are always on at /metrics)."""

from __future__ import annotations

from pydantic import field_validator

from fw.config.base import ConfigGroup, option

DETAIL_MODULES = ("model", "worker", "all")


class ObservabilityConfig(ConfigGroup):
    group_title = "ObservabilityConfig"
    group_help = "Configuration for observability: OpenTelemetry traces."

    otlp_traces_endpoint: str | None = option(
        None,
        "Send one OpenTelemetry span per request (vLLM's llm_request span and gen_ai.* attributes) "
        "to this OTLP endpoint. OTEL_EXPORTER_OTLP_TRACES_PROTOCOL picks the protocol "
        "(http/protobuf by default; grpc needs opentelemetry-exporter-otlp-proto-grpc); the other "
        "OTEL_* variables (headers, service name, timeouts) are honoured as usual.",
    )
    collect_detailed_traces: str | None = option(
        None,
        'Add the time each request spent in the model to its span: "model" (the forward passes), '
        '"worker" (forward passes plus sampling), "all", or a comma-separated mix. Needs '
        "--otlp-traces-endpoint.",
    )

    @field_validator("collect_detailed_traces")
    @classmethod
    def _modules(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in parts if p not in DETAIL_MODULES]
        if bad or not parts:
            raise ValueError(f"must be a comma-separated mix of {', '.join(DETAIL_MODULES)}, got {value!r}")
        return ",".join(parts)

    def detailed(self, module: str) -> bool:
        """Whether --collect-detailed-traces asks for ``module`` ("model" or "worker")."""
        parts = (self.collect_detailed_traces or "").split(",")
        return module in parts or "all" in parts
