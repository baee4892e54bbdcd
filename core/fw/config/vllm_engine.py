"""VllmConfig: vLLM's engine-wide options that fw does not build (compilation, KV
transfer between instances, KV-cache events, platform extras).

Each is refused when given, with the reason; they exist so a vLLM command line fails
with that reason rather than "No such option". ``-O0`` (no compilation) is what fw does
and is accepted.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from fw.config.base import ConfigGroup, option

NO_COMPILE = ("fw does not compile the model (no torch.compile, no CUDA graphs; its CPU kernels are "
              "ahead-of-time C); drop the option or give -O0")


class VllmEngineConfig(ConfigGroup):
    group_title = "VllmConfig"
    group_help = "vLLM's engine-wide options; fw refuses those it does not build, with the reason."

    compilation_config: dict[str, Any] | int | None = option(
        None,
        "torch.compile and CUDA-graph settings; -O<n> sets the level. fw runs uncompiled (level 0).",
        json=True, short="-O",
    )
    kv_transfer_config: dict[str, Any] | None = option(
        None, "KV-cache transfer between instances (disaggregated prefill).", json=True,
        unsupported="fw does not transfer KV caches between instances; each server prefills its own requests",
    )
    kv_events_config: dict[str, Any] | None = option(
        None, "Publishing KV-cache events (block stored / removed).", json=True,
        unsupported="fw publishes no KV-cache events; /metrics reports the cache's usage and hit rate",
    )
    additional_config: dict[str, Any] = option(
        {}, "Platform-specific extra configuration.", json=True,
        unsupported="fw has no platform-specific extra configuration",
    )

    @field_validator("compilation_config", mode="before")
    @classmethod
    def _level_zero_only(cls, value: Any) -> Any:
        level = value.get("level", value.get("mode")) if isinstance(value, dict) else value
        if value is None or (level in (0, "0") and (not isinstance(value, dict) or len(value) == 1)):
            return value
        raise ValueError(NO_COMPILE)
