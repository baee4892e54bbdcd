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
