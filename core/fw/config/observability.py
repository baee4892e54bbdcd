"""ObservabilityConfig: what the engine measures for traces (metrics are always on at
/metrics). The OTLP endpoint itself is `fw serve`'s (``ServeOptions``): the server sends
the spans, so offline commands, which send none, do not take it."""

from __future__ import annotations

from pydantic import field_validator

from fw.config.base import ConfigGroup, option

DETAIL_MODULES = ("model", "worker", "all")


class ObservabilityConfig(ConfigGroup):
    group_title = "ObservabilityConfig"
    group_help = "Configuration for observability: OpenTelemetry traces (see also --otlp-traces-endpoint)."

    collect_detailed_traces: str | None = option(
        None,
        'Measure the time each request spends in the model: "model" (the forward passes), "worker" '
        '(forward passes plus sampling), "all", or a comma-separated mix. `fw serve` adds it to the '
        "spans --otlp-traces-endpoint sends; offline it is in each RequestOutput's metrics.",
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
