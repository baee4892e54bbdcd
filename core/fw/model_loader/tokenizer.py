"""Loading a Hugging Face tokenizer folder for tools, without importing torch where
that is possible.

``AutoTokenizer`` imports transformers' config machinery, which imports torch (~4 s).
Tools that only need a tokenizer (``fw bench serve``, the GGUF tokenizer cache) skip it
when the folder's tokenizer_config.json names the generic ``tokenizer.json`` backend.
That reads tokenizer.json as it is; ``AutoTokenizer`` may add model-specific behaviour
on top (it looks at config.json's model type), so the engine itself always uses
``AutoTokenizer`` (``WeightLoader.tokenizer``) and tools get at most an approximation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from fw.errors import ModelLoadError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: classes that read tokenizer.json as it is, with no model-specific behaviour
GENERIC_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def load_hf_tokenizer(source: str | Path, *, trust_remote_code: bool = False) -> "PreTrainedTokenizerBase":
    """The tokenizer saved in folder ``source``; ModelLoadError names the folder if unusable."""
    folder = Path(source)
    if not folder.is_dir():
        raise ModelLoadError(folder, "no such tokenizer folder")
    try:
        if not trust_remote_code and _is_generic(folder):
            from transformers import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast.from_pretrained(folder)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (ValueError, OSError, TypeError) as exc:
        raise ModelLoadError(folder, f"no usable tokenizer: {exc}") from exc


def _is_generic(folder: Path) -> bool:
    config_file = folder / "tokenizer_config.json"
    if not (config_file.is_file() and (folder / "tokenizer.json").is_file()):
        return False
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(config_file, f"is not valid JSON: {exc}") from exc
    return config.get("tokenizer_class") in GENERIC_CLASSES and "auto_map" not in config
