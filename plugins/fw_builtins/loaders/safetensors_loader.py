"""``--load-format safetensors``: a Hugging Face folder of ``*.safetensors`` weights.

A sharded checkpoint is read through its ``model.safetensors.index.json``; otherwise
``model.safetensors``, or every ``*.safetensors`` file in the folder. Each file's header
is checked against the file size before any tensor is read, so a truncated download is
reported as such (naming the file and the missing bytes) rather than as a Rust error.
Files are memory-mapped (``--safetensors-load-strategy lazy``) or read whole (``eager``).
A GPTQ or AWQ checkpoint (config.json's ``quantization_config``) is decoded layer by
layer (``fw_builtins.quantization.checkpoint``).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from fw.model_loader.base import WeightLoader
from fw.errors import ModelLoadError

from fw_builtins.loaders.progress import progress

if TYPE_CHECKING:
    import torch

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
#: a header larger than this is corruption, not a checkpoint (safetensors' own limit)
MAX_HEADER = 100 * 1024 * 1024


class SafetensorsLoader(WeightLoader):
    name = "safetensors"
    auto_priority = 30

    @classmethod
    def can_load(cls, path: Path) -> bool:
        if path.is_file():
            return path.suffix == ".safetensors"
        return path.is_dir() and any(path.glob("*.safetensors"))

    def weight_files(self) -> list[Path]:
        """The files to read, in order; a shard the index names must exist."""
        if self.path.is_file():
            return [self.path]
        index = self.path / INDEX
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
                names = sorted(set(weight_map.values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModelLoadError(index, f"is not a valid safetensors index: {exc!r}") from exc
            missing = [n for n in names if not (self.path / n).is_file()]
            if missing:
                raise ModelLoadError(index, f"names shards that are missing: {', '.join(missing)}")
            return [self.path / n for n in names]
        if (self.path / SINGLE).is_file():
            return [self.path / SINGLE]
        files = sorted(self.path.glob("*.safetensors"))
        if not files:
            raise ModelLoadError(self.path, "holds no *.safetensors files")
        return files

    def default_quantization(self) -> str | None:
        """``int4`` for a GPTQ or AWQ checkpoint (its quantization_config)."""
        from fw_builtins.quantization import checkpoint

        return checkpoint.default_method(self)

    def iter_weights(self) -> Iterator[tuple[str, "torch.Tensor"]]:
        """The stored tensors; a GPTQ or AWQ layer's come as its dense weight."""
        from fw_builtins.quantization import checkpoint

        return checkpoint.decoded(self, self._tensors())

    def _tensors(self) -> Iterator[tuple[str, "torch.Tensor"]]:
        from safetensors import SafetensorError, safe_open

        if self.load_config.safetensors_load_strategy == "eager":
            yield from self._iter_eager()
            return
        files = self.weight_files()
        names = {file: read_header(file) for file in files}
        items = ((file, name) for file in files for name in names[file])
        current, handle = None, None
        for file, name in progress(items, total=sum(map(len, names.values())),
                                   desc="Loading safetensors weights",
                                   enabled=self.load_config.use_tqdm_on_load):
            try:
                if file != current:
                    current, handle = file, safe_open(file, framework="pt", device="cpu")
                tensor = handle.get_tensor(name)
            except SafetensorError as exc:
                raise ModelLoadError(file, f"cannot read tensor {name!r}: {exc}") from exc
            yield name, tensor


    def _iter_eager(self) -> Iterator[tuple[str, "torch.Tensor"]]:
        """--safetensors-load-strategy eager: each file read whole into memory, in one
        sequential read (network file systems serve that far better than mmap's random
        page faults), then its tensors taken from the bytes."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        files = self.weight_files()
        for file in progress(files, total=len(files), desc="Loading safetensors files (eager)",
                             enabled=self.load_config.use_tqdm_on_load):
            read_header(file)
            try:
                tensors = load(file.read_bytes())
            except SafetensorError as exc:
                raise ModelLoadError(file, f"cannot be read: {exc}") from exc
            yield from tensors.items()


def read_header(file: Path) -> list[str]:
    """The tensor names in ``file``, after checking the header fits the file."""
    size = file.stat().st_size
    if size < 8:
        raise ModelLoadError(file, f"is not a safetensors file: only {size} bytes")
    with open(file, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > MAX_HEADER or 8 + length > size:
            raise ModelLoadError(
                file, f"is truncated or not a safetensors file: its header claims {length} bytes "
                f"but the file has {size}",
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw)
        entries = {k: v for k, v in header.items() if k != "__metadata__"}
        end = max((int(v["data_offsets"][1]) for v in entries.values()), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ModelLoadError(file, f"has a malformed safetensors header: {exc!r}") from exc
    if 8 + length + end > size:
        raise ModelLoadError(
            file, f"is truncated: its tensors need {8 + length + end} bytes but the file has {size} "
            "(was the download cut short?)",
        )
    return list(entries)
