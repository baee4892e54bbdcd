"""StructuredOutputsConfig: constrained decoding and the reasoning parser (vLLM puts
`--reasoning-parser` in this group: structured outputs constrain only what follows the
reasoning).

vLLM spells the backend options twice: the older flags (``--guided-decoding-backend``
...) and one JSON option, ``--structured-outputs-config`` (``{"backend": "guidance"}`` or
``--structured-outputs-config.backend guidance``). The JSON keys are folded into the flags'
fields here, so the rest of fw reads one field per setting.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from fw.config.base import ConfigGroup, option

#: --structured-outputs-config key -> the field it sets
JSON_KEYS = {
    "backend": "guided_decoding_backend",
    "disable_fallback": "guided_decoding_disable_fallback",
    "disable_any_whitespace": "guided_decoding_disable_any_whitespace",
    "disable_additional_properties": "guided_decoding_disable_additional_properties",
    "reasoning_parser": "reasoning_parser",
}
STRICT_OBJECTS = ("fw's backends give an object only the properties its schema lists unless the schema "
                  "sets additionalProperties; set it in the schema to allow more")


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
        "auto",
        'The structured-output backend: "xgrammar", "guidance" (llguidance), a plugin\'s, or "auto": '
        "xgrammar, falling back to guidance for a constraint xgrammar cannot compile. A request may "
        "pick one with guided_decoding_backend. Unknown names fail at start-up.",
    )
    guided_decoding_disable_fallback: bool = option(
        False, 'With "auto", report a constraint the first backend cannot compile instead of trying the other.'
    )
    guided_decoding_disable_any_whitespace: bool = option(
        False, "Generate JSON without optional whitespace (compact output, fewer tokens)."
    )
    guided_decoding_disable_additional_properties: bool = option(
        True,
        "Give JSON objects only the properties their schema lists, unless the schema sets "
        "additionalProperties (always on in fw, with every backend).",
        unsupported={False: STRICT_OBJECTS},
    )
    guided_decoding_compile_timeout: float = option(
        30.0, "Seconds a new grammar may take to compile before its request is refused (fw-specific)."
    )
    structured_outputs_config: dict[str, Any] = option(
        {},
        "The settings above as one JSON object (vLLM's newer spelling): keys " + ", ".join(JSON_KEYS) +
        ', e.g. {"backend": "guidance"} or --structured-outputs-config.backend guidance.',
        json=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _fold_json(cls, values: Any) -> Any:
        if not isinstance(values, dict) or not values.get("structured_outputs_config"):
            return values
        given = values["structured_outputs_config"]
        if not isinstance(given, dict):
            raise ValueError("--structured-outputs-config must be a JSON object")
        unknown = sorted(set(given) - set(JSON_KEYS))
        if unknown:
            raise ValueError(f"--structured-outputs-config: unknown key(s) {', '.join(unknown)}; "
                             f"keys are {', '.join(JSON_KEYS)}")
        values = dict(values)
        for key, value in given.items():
            field = JSON_KEYS[key]
            if field in values and values[field] != value:
                raise ValueError(f"--structured-outputs-config.{key} ({value!r}) disagrees with "
                                 f"--{field.replace('_', '-')} ({values[field]!r}); give one")
            values[field] = value
        if values.get("guided_decoding_disable_additional_properties") is False:
            raise ValueError(f"--structured-outputs-config.disable_additional_properties: {STRICT_OBJECTS}")
        return values
