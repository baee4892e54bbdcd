"""MultiModalConfig: vLLM's options for image, audio and video inputs.

fw serves text-only models, so every option here is refused when given (each names
why); they exist so a vLLM command line fails with that reason, not "No such option".
"""

from __future__ import annotations

from typing import Any, Literal

from fw.config.base import ConfigGroup, option

TEXT_ONLY = "fw serves text-only models; drop the option"


class MultiModalConfig(ConfigGroup):
    group_title = "MultiModalConfig"
    group_help = "Multimodal inputs (fw serves text-only models: every option is refused when given)."

    limit_mm_per_prompt: dict[str, Any] = option(
        {}, 'Maximum input items per prompt per modality, e.g. {"image": 16}.', json=True, unsupported=TEXT_ONLY)
    media_io_kwargs: dict[str, Any] = option(
        {}, "Arguments for reading media, per modality.", json=True, unsupported=TEXT_ONLY)
    mm_processor_kwargs: dict[str, Any] | None = option(
        None, "Arguments for the model's multimodal processor.", json=True, unsupported=TEXT_ONLY)
    mm_processor_cache_gb: float = option(
        4, "GiB of the multimodal processor cache.", unsupported=TEXT_ONLY)
    disable_mm_preprocessor_cache: bool = option(
        False, "Disable the multimodal preprocessor cache.", unsupported=TEXT_ONLY)
    mm_processor_cache_type: Literal["lru", "shm"] = option(
        "lru", "Kind of multimodal processor cache.", unsupported=TEXT_ONLY)
    mm_shm_cache_max_object_size_mb: int = option(
        128, "Largest object (MiB) in the shared-memory multimodal cache.", unsupported=TEXT_ONLY)
    mm_encoder_tp_mode: Literal["data", "weights"] = option(
        "weights", "How tensor parallelism splits the multimodal encoder.", unsupported=TEXT_ONLY)
    interleave_mm_strings: bool = option(
        False, "Interleave multimodal items with text in string-format prompts.", unsupported=TEXT_ONLY)
    skip_mm_profiling: bool = option(
        False, "Skip profiling the multimodal encoder's memory at start-up.", unsupported=TEXT_ONLY)
    video_pruning_rate: float | None = option(
        None, "Fraction of video tokens to prune.", unsupported=TEXT_ONLY)
