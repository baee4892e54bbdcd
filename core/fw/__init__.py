"""fw: a plugin-oriented LLM inference and serving framework.

`import fw` stays cheap (no torch) so that the CLI starts fast; the engine-facing names
(`LLM`, `SamplingParams`, ...) are imported on first use.
"""

from fw.hookspecs import hookimpl
from fw.version import __version__

_LAZY = {
    "LLM": "fw.entrypoints.llm:LLM",
    "SamplingParams": "fw.engine.sampling_params:SamplingParams",
    "BeamSearchParams": "fw.engine.sampling_params:BeamSearchParams",
    "RequestOutput": "fw.engine.outputs:RequestOutput",
    "CompletionOutput": "fw.engine.outputs:CompletionOutput",
    "AsyncEngine": "fw.engine.async_engine:AsyncEngine",
    "LoRARequest": "fw.lora.request:LoRARequest",
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'fw' has no attribute {name!r}")
    from fw.registry import import_target

    value = import_target(target)
    globals()[name] = value
    return value
