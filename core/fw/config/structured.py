"""StructuredOutputsConfig: constrained decoding and the reasoning parser (vLLM puts
`--reasoning-parser` in this group: structured outputs constrain only what follows the
reasoning)."""

from __future__ import annotations

from fw.config.base import ConfigGroup, option


class StructuredOutputsConfig(ConfigGroup):
    group_title = "StructuredOutputsConfig"
    group_help = "Structured outputs (guided decoding) and reasoning."

    reasoning_parser: str | None = option(
        None,
        "Split the model's reasoning from its answer with this parser (deepseek_r1, qwen3, or a "
        "plugin's); responses then carry reasoning_content, and structured outputs constrain only "
        "the answer.",
    )
    guided_decoding_backend: str = option(
        "auto", 'The structured-output backend: "auto" (xgrammar) or a plugin-registered name.'
    )
    guided_decoding_disable_any_whitespace: bool = option(
        False, "Generate JSON without optional whitespace (compact output, fewer tokens)."
    )
    guided_decoding_compile_timeout: float = option(
        30.0, "Seconds a new grammar may take to compile before its request is refused (fw-specific)."
    )
