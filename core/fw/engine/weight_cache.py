"""The prepared-weights cache: a model's weights as the kernels run them, kept on disk.

Preparing weights (dequantizing a GGUF file, packing int4 blocks and 8-bit panels) took
16 s of fw's 28 s start on the 98 MB embedded model; the result only depends on the
checkpoint's bytes and on the code that prepares them. So the first start writes it to
``$FW_CACHE_DIR/weights/KEY`` (``prepared_state``) and later starts map it back: the
checkpoint's weights are not even read.

KEY hashes what the prepared weights depend on: the checkpoint's content (a SHA-256 of
its files, remembered per path, size, inode and mtime so it is computed once per file),
fw's version and the source of the code that prepares weights, torch's version, the
model class, dtype, device, quantization method, the CPU kernels this machine builds, and
the options that change the model (max length, RoPE, config overrides). Anything else
changes the key, never the meaning of an entry. Only checkpoints of ``MIN_BYTES`` and
more are cached (a small one prepares faster than it maps); the newest ``KEEP`` entries
are kept. ``--no-weights-cache`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fw.engine import prepared_state

logger = logging.getLogger("fw.engine")

#: bump when the entry format changes
FORMAT = 1
#: checkpoints smaller than this are prepared every time
MIN_BYTES = 32 << 20
#: entries kept; older ones are removed when a new one is written
KEEP = 3
#: packages whose source decides how weights are prepared (a change makes new keys)
CODE = ("fw.layers", "fw.layers.packed", "fw.models", "fw.engine", "fw.model_loader", "fw_kernels.cpu")


def cache_root() -> Path:
    return Path(os.environ.get("FW_CACHE_DIR") or Path.home() / ".cache" / "fw") / "weights"


class WeightCache:
    """One entry of the cache; ``restore`` fills a model from it, ``save`` writes it."""

    def __init__(self, folder: Path):
        self.folder = folder

    @classmethod
    def open(cls, files: list[Path], parts: dict[str, Any], code_of: list[object]) -> "WeightCache | None":
        """The entry for a checkpoint of ``files`` prepared as ``parts`` say by the code of
        ``code_of`` (objects whose modules' packages count too); None when not worth it."""
        if sum(f.stat().st_size for f in files) < MIN_BYTES:
            return None
        key = {"format": FORMAT, "files": [file_digest(f) for f in files], "code": code_digest(code_of),
               "torch": torch.__version__, **{k: repr(v) for k, v in parts.items()}}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        return cls(cache_root() / digest)

    def restore(self, model: nn.Module) -> bool:
        if not (self.folder / "index.json").is_file():
            return False
        try:
            restored = prepared_state.read(model, self.folder)
        except (OSError, ValueError, KeyError, TypeError, ImportError, AttributeError) as exc:
            logger.warning("the prepared weights in %s cannot be read (%s); preparing them again", self.folder, exc)
            return False
        if restored:
            os.utime(self.folder / "index.json")  # recently used: kept by _evict
        return restored

    def save(self, model: nn.Module, before: prepared_state.Watch) -> None:
        state = prepared_state.capture(model, before)
        if state is None:
            logger.info("the prepared weights hold objects fw cannot store; not cached")
            return
        try:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=self.folder.parent))
            try:
                written = prepared_state.write(state, staging)
                os.replace(staging, self.folder)  # atomic: readers never see half an entry
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            if not self.folder.is_dir():  # another process may have written it first
                logger.warning("cannot cache the prepared weights in %s (%s)", self.folder, exc)
            return
        logger.info("prepared weights cached in %s (%.0f MiB)", self.folder, written / 2**20)
        _evict(self.folder.parent)


def _evict(root: Path) -> None:
    entries = sorted((p for p in root.iterdir() if (p / "index.json").is_file()),
                     key=lambda p: (p / "index.json").stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


def file_digest(path: Path) -> str:
    """SHA-256 of ``path``'s bytes, remembered under its path, size, inode and mtime."""
    stat = path.stat()
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_ino}|{stat.st_mtime_ns}"
    memo = cache_root() / "digests" / hashlib.sha256(identity.encode()).hexdigest()[:32]
    try:
        return memo.read_text()
    except OSError:
        pass
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(digest)
    except OSError:
        pass
    return digest


def code_digest(objects: list[object]) -> str:
    """SHA-256 of the Python sources of ``CODE`` and of the packages defining ``objects``."""
    import importlib
    import inspect

    folders = {Path(importlib.import_module(name).__file__).parent for name in CODE}
    for obj in objects:
        if obj is None:
            continue
        source = inspect.getsourcefile(obj if inspect.isclass(obj) else type(obj))
        if source:
            folders.add(Path(source).parent)
    digest = hashlib.sha256()
    for file in sorted(f for folder in folders for f in folder.glob("*.py")):
        digest.update(str(file).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def checkpoint_files(path: Path) -> list[Path]:
    """The files a model path stands for: the file, or every file under the folder."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def for_model(config: Any, loader: Any, model: nn.Module, context: Any) -> WeightCache | None:
    """The cache entry for ``model`` as ``model_builder`` is about to prepare it from
    ``loader`` (an EngineConfig and a ModelContext), or None where the cache is off."""
    if not config.load.weights_cache or loader.random_init:
        return None
    from fw.version import __version__

    parts: dict[str, Any] = {
        "fw": __version__, "model": type(model).__qualname__, "dtype": context.dtype, "device": context.device,
        "quantization": type(context.quantization).__qualname__, "max_model_len": context.extra.get("max_model_len"),
        "hf_overrides": config.model.hf_overrides, "rope": (config.model.rope_scaling, config.model.rope_theta),
        "config": (config.model.hf_config_path, config.model.disable_sliding_window),
        "loader": type(loader).__qualname__, "env": [os.environ.get(k) for k in ("FW_CPU_KERNELS", "FW_CPU_MARCH")],
    }
    if context.device.type == "cpu":
        from fw_kernels.cpu import build

        parts["kernels"] = build.identity()  # not the build itself: a first start prepares weights meanwhile
    return WeightCache.open(checkpoint_files(loader.path), parts, [type(model), context.quantization, type(loader)])
