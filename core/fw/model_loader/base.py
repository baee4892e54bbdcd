"""The contract of a weight loader (a ``fw_register_load_formats`` plugin).

A loader reads one model from a path: its Hugging Face config, its tokenizer and its
weights as ``(hf_checkpoint_name, tensor)`` pairs. Names follow the Hugging Face
checkpoint convention (``model.layers.0.self_attn.q_proj.weight``) whatever the file
format, so model code never knows where its weights came from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterator

from fw.errors import ModelLoadError

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

    from fw.config import LoadConfig, ModelConfig
    from fw.model_loader.int4_grids import Int4Grid


class WeightLoader(ABC):
    #: the --load-format name
    name: ClassVar[str] = ""
    #: with --load-format auto, loaders whose can_load() is true are tried highest first;
    #: None means never chosen automatically (e.g. "dummy")
    auto_priority: ClassVar[int | None] = None
    #: True when the model keeps its random initialisation (no weights are read)
    random_init: ClassVar[bool] = False

    def __init__(self, path: Path, load_config: "LoadConfig", model_config: "ModelConfig"):
        self.path = Path(path)
        self.load_config = load_config
        self.model_config = model_config
        #: the checkpoint's own 4-bit grids by Hugging Face module name, filled while
        #: ``iter_weights`` runs (GPTQ/AWQ layers; see fw.model_loader.int4_grids)
        self.int4_grids: dict[str, "Int4Grid"] = {}

    @classmethod
    def architectures(cls) -> frozenset[str] | None:
        """The Hugging Face architectures files of this format can hold (None: any, as a
        checkpoint folder's config.json names it); the supported-models table reads it."""
        return None

    @classmethod
    def can_load(cls, path: Path) -> bool:
        """Whether ``path`` holds weights this loader reads (for ``--load-format auto``)."""
        return False

    def hf_config(self) -> "PretrainedConfig":
        """The model's Hugging Face config (the folder's config.json by default)."""
        from transformers import AutoConfig

        folder = self.path if self.path.is_dir() else self.path.parent
        if not (folder / "config.json").is_file():
            raise ModelLoadError(folder / "config.json", "missing: a model folder needs a config.json")
        try:
            return AutoConfig.from_pretrained(
                folder, trust_remote_code=self.model_config.trust_remote_code
            )
        except (ValueError, OSError) as exc:
            raise ModelLoadError(folder / "config.json", f"cannot be read as a model config: {exc}") from exc

    def tokenizer(self) -> "PreTrainedTokenizerBase":
        """The model's tokenizer (``--tokenizer`` wins over the model folder's).

        Always through ``AutoTokenizer``: it applies model-specific tokenization (Qwen2's
        digit splitting, say) even when the folder names a generic tokenizer class, and
        the engine must tokenize exactly as transformers does.
        """
        from transformers import AutoTokenizer

        source = self.model_config.tokenizer or (self.path if self.path.is_dir() else self.path.parent)
        try:
            return AutoTokenizer.from_pretrained(source, trust_remote_code=self.model_config.trust_remote_code)
        except (ValueError, OSError, TypeError) as exc:
            raise ModelLoadError(source, f"no usable tokenizer: {exc}") from exc

    def generation_config(self) -> dict:
        """Default sampling settings the model ships (generation_config.json), if any."""
        import json

        folder = self.path if self.path.is_dir() else self.path.parent
        file = folder / "generation_config.json"
        if not file.is_file():
            return {}
        try:
            return json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(file, f"is not valid JSON: {exc}") from exc

    def default_quantization(self) -> str | None:
        """The quantization method the file's own format calls for when ``--quantization``
        is not given (a GGUF file of quantized tensors: ``gguf``), or None for plain weights."""
        return None

    @abstractmethod
    def iter_weights(self) -> Iterator[tuple[str, "torch.Tensor"]]:
        """Yield ``(hf_checkpoint_name, tensor)`` for every stored weight."""
