"""VllmConfig: vLLM's engine-wide options that fw does not build (compilation, KV
transfer between instances, KV-cache events, platform extras).

Each is refused when given, with the reason; they exist so a vLLM command line fails
with that reason rather than "No such option". ``--compilation-config`` / ``-O`` is
accepted where vLLM's keys apply to fw: level (or mode) 0, no torch.compile, which is
what fw does, and the CUDA-graph keys (``fw.engine.cuda_graphs``); any other key or
value is refused naming it.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from fw.config.base import ConfigGroup, option

NO_COMPILE = ("fw does not compile the model with torch.compile (its CPU kernels are ahead-of-time C; "
              "on CUDA it captures full CUDA graphs of decode steps)")
#: cudagraph_mode values: what fw does (full graphs of decode steps) and off
GRAPH_MODES = ("NONE", "FULL_DECODE_ONLY")
#: the keys fw applies, and how each value is checked
_APPLIED = {
    "level": lambda v: v in (0, "0"),
    "mode": lambda v: v in (0, "0", "NONE", "none"),
    "cudagraph_mode": lambda v: str(v).upper() in GRAPH_MODES,
    "cudagraph_capture_sizes": lambda v: isinstance(v, list) and all(isinstance(s, int) and s > 0 for s in v),
    "max_cudagraph_capture_size": lambda v: isinstance(v, int) and v > 0,
    "cudagraph_num_of_warmups": lambda v: isinstance(v, int) and v >= 0,
    "use_cudagraph": lambda v: isinstance(v, bool),
}
_WHY = {
    "level": NO_COMPILE + "; give -O0 or leave it out",
    "mode": NO_COMPILE + "; give mode 0 or leave it out",
    "cudagraph_mode": f"fw captures full graphs of decode steps only: give one of {', '.join(GRAPH_MODES)}",
    "cudagraph_capture_sizes": "a list of positive batch sizes",
    "max_cudagraph_capture_size": "a positive batch size",
    "cudagraph_num_of_warmups": "a count of eager runs, 0 or more",
    "use_cudagraph": "true or false",
}


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
    def _applied_keys_only(cls, value: Any) -> Any:
        if value is None:
            return value
        keys = value if isinstance(value, dict) else {"level": value}  # -O<n>: the level
        for key, item in keys.items():
            if key not in _APPLIED:
                raise ValueError(f"key {key!r}: {NO_COMPILE}; fw applies only "
                                 f"{', '.join(sorted(_APPLIED))}")
            if not _APPLIED[key](item):
                raise ValueError(f"{key}={item!r}: {_WHY[key]}")
        return value
