"""LoadConfig: how weights are read."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import field_validator

from fw.config.base import ConfigGroup, option


class LoadConfig(ConfigGroup):
    group_title = "LoadConfig"
    group_help = "Configuration for loading the model weights."

    load_format: str = option(
        "auto",
        'The format of the model weights: "auto" decides from what the path holds '
        '(safetensors, then pytorch .bin, then .gguf); "safetensors", "pt", "gguf", or '
        '"dummy" (random weights from the config, for profiling). Plugins add more.',
    )
    use_tqdm_on_load: bool = option(True, "Show a progress bar while loading model weights.")
    weights_cache: bool = option(
        True,
        "Keep the weights as fw prepares them for its kernels (dequantized, packed) under "
        "$FW_CACHE_DIR/weights, keyed by the checkpoint's content hash and fw's version, "
        "and map them from there at the next start instead of preparing them again "
        "(checkpoints of 32 MiB and more; the 3 most recent are kept).",
    )
    download_dir: str | None = option(
        None,
        "The folder hub models are looked up in and downloaded to (a Hugging Face cache "
        "folder). If unspecified, Hugging Face's cache (HF_HUB_CACHE, else HF_HOME/hub).",
    )
    allow_patterns: list[str] | None = option(
        None,
        "Only the files of a hub model that match one of these glob patterns are downloaded "
        "(repeat the option for several), e.g. '*.safetensors' '*.json'.",
    )
    ignore_patterns: list[str] | None = option(
        None,
        "The files of a hub model that match one of these glob patterns are not downloaded "
        "(repeat the option for several). If unspecified, fw skips files it never reads: "
        "original/*, ONNX, TensorFlow and Flax weights, and .bin weights when the repo has "
        "safetensors.",
    )
    safetensors_load_strategy: Literal["lazy", "eager"] = option(
        "lazy",
        '"lazy" memory-maps safetensors files and reads tensors on demand (best for local disks); '
        '"eager" reads each whole file into memory first (faster on network file systems, costs RAM).',
    )
    pt_load_map_location: str | dict[str, str] = option(
        "cpu",
        'Where torch.load puts the tensors of .bin/.pt checkpoints: a device ("cpu", "cuda") or a '
        'JSON mapping of devices, e.g. {"cuda:1": "cuda:0"}.',
    )
    model_loader_extra_config: dict[str, Any] = option(
        {},
        "Extra configuration for the chosen --load-format's loader (JSON, or dotted keys).",
        json=True,
        unsupported="fw's loaders take no extra configuration; choose the loader with --load-format",
    )

    @field_validator("pt_load_map_location", mode="before")
    @classmethod
    def _mapping_from_json(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at position {exc.pos}): {value!r}") from None
        return value

