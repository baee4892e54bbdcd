"""LoadConfig: how weights are read."""

from __future__ import annotations

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
