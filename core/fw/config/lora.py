"""LoRAConfig: serving LoRA adapters next to the base model.

``--lora-modules`` sits here rather than in the server's Frontend group (where vLLM
lists it) because the engine registers those adapters at start-up; the server then
learns them from the engine (``engine.list_loras()``), and ``fw.LLM(...,
lora_modules=...)`` gets the same option for free.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from fw.config.base import ConfigGroup, option

LoRADType = Literal["auto", "bfloat16", "float16", "float32"]


class LoRAModulePath(BaseModel):
    """One adapter to register at start-up: the name requests use, and its folder."""

    model_config = ConfigDict(extra="forbid")

    name: str
    path: str
    #: the base model the adapter belongs to (``parent`` in /v1/models); None = the served model
    base_model_name: str | None = None


def parse_lora_modules(value: Any) -> list[LoRAModulePath]:
    """Every spelling, flattened: a string is ``name=path``, a JSON object or a JSON list
    of objects; a list may mix them (the option is repeatable and takes several values
    per flag)."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[LoRAModulePath] = []
    for item in items:
        if isinstance(item, str) and item.strip().startswith(("{", "[")):
            try:
                parsed = json.loads(item)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at position {exc.pos}): {item!r}") from None
            out.extend(_module(entry) for entry in (parsed if isinstance(parsed, list) else [parsed]))
        else:
            out.append(_module(item))
    return out


def _module(item: Any) -> LoRAModulePath:
    if isinstance(item, LoRAModulePath):
        return item
    if isinstance(item, str):
        name, eq, path = item.partition("=")
        if eq and name.strip() and path.strip():
            return LoRAModulePath(name=name.strip(), path=path.strip())
    elif isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("path"), str):
        extra = set(item) - set(LoRAModulePath.model_fields)
        if not extra:
            return LoRAModulePath(**item)
        raise ValueError(f"unknown key(s) {', '.join(sorted(extra))} in {item!r}; keys are name, path, "
                         "base_model_name")
    raise ValueError(f"{item!r} is neither 'name=path' nor JSON like "
                     '{"name": "sql", "path": "/adapters/sql", "base_model_name": "base"}')


class LoRAConfig(ConfigGroup):
    group_title = "LoRAConfig"
    group_help = "Configuration for LoRA."

    enable_lora: bool = option(
        False, "Enable handling of LoRA adapters. With the environment variable "
               "FW_ALLOW_RUNTIME_LORA_UPDATING=1, `fw serve` also offers POST /v1/load_lora_adapter "
               "and /v1/unload_lora_adapter to add and remove adapters while it runs.")
    max_loras: int = option(
        1, "Maximum number of different LoRA adapters in one batch; requests for further "
           "adapters wait until one of the running adapters has no request left.", ge=1)
    max_lora_rank: int = option(16, "Maximum LoRA rank; adapters of a higher rank are refused.", ge=1)
    lora_dtype: LoRADType = option(
        "auto", 'Data type of the LoRA weights and their computation. "auto" uses the base '
                "model's dtype.")
    max_cpu_loras: int | None = option(
        None, "Maximum number of adapters kept loaded in memory; the least recently used one is "
              "dropped beyond it and read from disk again when a request needs it. Must be >= "
              "--max-loras; defaults to it.", ge=1)
    fully_sharded_loras: bool = option(
        False, "Shard the whole LoRA computation (not only half of it) under tensor parallelism.",
        unsupported="fw runs LoRA unsharded on one device; drop the option")
    enable_lora_bias: bool = option(
        False, "Serve adapters that train biases (deprecated in vLLM).",
        unsupported="fw applies LoRA's A and B matrices only and refuses adapters with biases")
    lora_extra_vocab_size: int = option(
        0, "Tokens an adapter may add to the vocabulary (deprecated in vLLM).",
        unsupported="fw's adapters cannot add tokens to the vocabulary; drop the option")
    default_mm_loras: dict[str, str] | None = option(
        None, "Adapters applied by default per input modality (JSON).", json=True,
        unsupported="fw serves text-only models")
    lora_modules: list[LoRAModulePath] = option(
        [], "LoRA adapters to serve, registered at start-up: 'name=path', the JSON form "
            '\'{"name": "sql", "path": "/adapters/sql", "base_model_name": "base"}\', or a JSON '
            "list of those. Repeatable; several values may follow one flag. Needs --enable-lora.",
        metavar="LORA_MODULES [LORA_MODULES ...]")
    lora_path_roots: list[str] = option(
        [], "Folders POST /v1/load_lora_adapter may load adapters from (absolute paths; an "
            "adapter's folder must lie inside one, after symbolic links are resolved). "
            "Repeatable. Defaults to the folders of --lora-modules; with neither, run-time "
            "loading refuses every path.",
        metavar="LORA_PATH_ROOTS [LORA_PATH_ROOTS ...]")

    @field_validator("lora_modules", mode="before")
    @classmethod
    def _parse_modules(cls, value: Any) -> list[LoRAModulePath]:
        return parse_lora_modules(value)

    @field_validator("lora_path_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[str]) -> list[str]:
        relative = [root for root in roots if not os.path.isabs(root)]
        if relative:
            raise ValueError(f"must be absolute paths (no ~ or relative folders): {', '.join(relative)}")
        return roots

    @property
    def runtime_roots(self) -> list[str]:
        """Where run-time loads may read adapters: --lora-path-roots, else the folders of
        --lora-modules."""
        return self.lora_path_roots or [module.path for module in self.lora_modules]

    @model_validator(mode="after")
    def _check(self) -> "LoRAConfig":
        if self.max_cpu_loras is not None and self.max_cpu_loras < self.max_loras:
            raise ValueError(f"--max-cpu-loras ({self.max_cpu_loras}) must be >= --max-loras ({self.max_loras})")
        if self.lora_modules and not self.enable_lora:
            raise ValueError("--lora-modules needs --enable-lora")
        names = [m.name for m in self.lora_modules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"--lora-modules names each adapter once; repeated: {', '.join(duplicates)}")
        return self

    @property
    def cpu_capacity(self) -> int:
        """How many adapters stay loaded in memory (``--max-cpu-loras`` or ``--max-loras``)."""
        return self.max_cpu_loras or self.max_loras
