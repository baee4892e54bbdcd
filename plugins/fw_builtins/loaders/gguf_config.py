"""The model config of a GGUF file, without importing transformers' config classes.

``AutoConfig.for_model`` imports transformers' configuration machinery, which pulls in
much of torch.distributed: 2-6 s of a start-up that otherwise needs ~3 s. The model
plugins only read a handful of attributes, so ``GGUFConfig`` holds the file's values
(``gguf_metadata.config_dict``) plus the few defaults those plugins read, set as
transformers sets them (a test holds them equal); anything else, and ``to_dict()``, is
asked of the transformers config, built on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fw.errors import ModelLoadError

#: attributes fw's model plugins read that a GGUF file does not hold, as transformers'
#: Llama/Qwen2/Qwen3 configs set them (or as the plugins' own getattr defaults, where
#: transformers has none): see tests/plugins/loaders/test_gguf_config.py
DEFAULTS = {"hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "use_sliding_window": False,
            "sliding_window": None, "partial_rotary_factor": 1.0}


class GGUFConfig:
    """Attribute access like a transformers ``PretrainedConfig``, for the values a GGUF
    file describes."""

    def __init__(self, values: dict[str, Any], source: Path | str = "the GGUF file"):
        own = {**DEFAULTS, **values}
        # transformers 5 keeps theta and scaling in rope_parameters, rope_scaling its alias
        own["rope_parameters"] = rope_parameters(values)
        own["rope_scaling"] = dict(own["rope_parameters"])
        self.__dict__.update(own)
        self.__dict__["_values"] = dict(values)
        self.__dict__["_full"] = None
        self.__dict__["_source"] = source

    def __getattr__(self, name: str) -> Any:
        """Anything the file does not say: transformers' value (imported on first use)."""
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.transformers_config(), name)

    def transformers_config(self):
        """The transformers config of the same values (``AutoConfig.for_model``)."""
        if self.__dict__["_full"] is None:
            from transformers import AutoConfig

            try:
                self.__dict__["_full"] = AutoConfig.for_model(**self.__dict__["_values"])
            except (ValueError, TypeError) as exc:
                raise ModelLoadError(self.__dict__["_source"], f"its metadata does not make a valid config: {exc}") from exc
        return self.__dict__["_full"]

    def to_dict(self) -> dict[str, Any]:
        return self.transformers_config().to_dict()

    def __repr__(self) -> str:
        return f"GGUFConfig({self.__dict__['_values']!r})"


def rope_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """As transformers 5 standardises them: the scaling (or ``default``) with the theta."""
    scaling = dict(values.get("rope_scaling") or {"rope_type": "default"})
    return {**scaling, "rope_theta": float(values.get("rope_theta", 10000.0))}
