"""`fw collect-env`: the facts a bug report needs, as text to paste.

Most fw problems depend on the machine (which AVX-512 / AMX instructions the CPU has,
how much memory, which GPU), on the versions of torch, triton and transformers, and on
which plugins are installed; this prints all of them. Package versions are read from
their metadata, so a broken package is still reported; only torch is imported, to ask it
about CUDA.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import sys
from pathlib import Path

import click
from pydantic import BaseModel

from fw.cli.config_command import config_command

#: CPU flags (as /proc/cpuinfo names them) that decide which kernels can run fast
CPU_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
PACKAGES = ("fw", "torch", "triton", "transformers", "tokenizers", "safetensors", "numpy",
            "xgrammar", "gguf", "fastapi", "uvicorn", "pydantic", "httpx", "pluggy", "ray")
#: environment variables that change what fw does; values of secret-looking ones are hidden
ENV_PREFIXES = ("FW_", "CUDA_", "TRITON_", "HF_", "OMP_", "TORCH_", "PYTORCH_", "RAY_", "NCCL_", "GLOO_", "MASTER_")


class CollectEnvConfig(BaseModel):
    """No options: the command only reports."""


@config_command(CollectEnvConfig, name="collect-env",
                help="Print the environment (CPU, memory, GPU, distributed set-up, package versions, fw plugins) "
                     "as text to paste into a bug report.")
def collect_env(config: CollectEnvConfig) -> None:
    sections = [("System", _system()), ("Versions", _versions()), ("GPU", _gpu()), ("Distributed", _distributed()),
                ("fw plugins", _plugins()), ("Environment variables", _environment())]
    for title, lines in sections:
        click.echo(f"== {title} ==")
        for line in lines:
            click.echo(line)
        click.echo()


def _system() -> list[str]:
    model, flags = _cpu_info()
    present = [f for f in CPU_FLAGS if f in flags]
    missing = [f for f in CPU_FLAGS if f not in flags]
    flag_line = " ".join(present) or "none of the listed"
    if flags and missing:
        flag_line += f" (missing: {' '.join(missing)})"
    elif not flags:
        flag_line = "unknown (no /proc/cpuinfo)"
    return [
        f"OS: {platform.platform()}",
        f"Python: {sys.version.split()[0]} ({sys.executable})",
        f"CPU: {model}",
        f"CPU cores: {os.cpu_count()} logical, {_usable_cores()} usable by this process",
        f"CPU flags: {flag_line}",
        f"Memory: {_memory()}",
    ]


def _cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags (flags are known on Linux only)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine() or "unknown", set()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name") or fields.get("Model") or platform.machine()
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return model, flags


def _usable_cores() -> int | str:
    """Cores this process may run on (fewer than the machine's under taskset or cgroups)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"


def _memory() -> str:
    gib = 1024**3
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        total = int(info["MemTotal"].split()[0]) * 1024
        available = int(info["MemAvailable"].split()[0]) * 1024
        return f"{total / gib:.1f} GiB total, {available / gib:.1f} GiB available"
    except (OSError, KeyError, ValueError):
        pass
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / gib:.1f} GiB total"
    except (ValueError, OSError, AttributeError):
        return "unknown"


def _versions() -> list[str]:
    lines = []
    for name in PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"{name}: {version}")
    return lines


def _gpu() -> list[str]:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken torch is exactly what to report
        return [f"torch cannot be imported: {type(exc).__name__}: {exc}"]
    lines = [f"CUDA available: {torch.cuda.is_available()}",
             f"CUDA version (torch build): {torch.version.cuda or 'none (CPU build)'}"]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            lines.append(f"GPU {index}: {props.name}, {props.total_memory / 1024**3:.1f} GiB, "
                         f"compute capability {props.major}.{props.minor}")
    lines.append(f"torch CPU capability: {torch.backends.cpu.get_cpu_capability()}, "
                 f"{torch.get_num_threads()} threads")
    return lines


def _distributed() -> list[str]:
    try:
        from fw.distributed.environment import describe
    except Exception as exc:  # noqa: BLE001 - a broken torch is reported in the GPU section
        return [f"cannot be inspected: {type(exc).__name__}: {exc}"]
    return describe()


def _plugins() -> list[str]:
    from fw.plugins import get_host

    lines = []
    for info in sorted(get_host().plugins.values(), key=lambda p: (not p.builtin, p.name)):
        origin = "built-in" if info.builtin else f"{info.distribution or '?'} {info.version or ''}".strip()
        status = f" — FAILED TO LOAD: {info.error}" if info.error else ""
        lines.append(f"{info.name} ({origin}; {info.module}){status}")
    return lines or ["none"]


def _environment() -> list[str]:
    lines = []
    for name in sorted(os.environ):
        if name.startswith(ENV_PREFIXES):
            secret = any(word in name for word in ("TOKEN", "KEY", "SECRET", "PASSWORD"))
            lines.append(f"{name}={'***' if secret else os.environ[name]}")
    return lines or [f"none of {', '.join(prefix + '*' for prefix in ENV_PREFIXES)} set"]
