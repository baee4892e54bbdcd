"""``--load-format pt``: PyTorch ``pytorch_model*.bin`` checkpoints (older hub models).

Files are read with ``torch.load(weights_only=True)``, so a checkpoint can hold tensors
and plain containers but never run code while it is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from fw.model_loader.base import WeightLoader
from fw.errors import ModelLoadError

from fw_builtins.loaders.progress import progress

if TYPE_CHECKING:
    import torch

INDEX = "pytorch_model.bin.index.json"
PATTERN = "pytorch_model*.bin"
SUFFIXES = (".bin", ".pt", ".pth")


class PtLoader(WeightLoader):
    name = "pt"
    auto_priority = 20

    @classmethod
    def can_load(cls, path: Path) -> bool:
        if path.is_file():
            return path.suffix in SUFFIXES
        return path.is_dir() and any(path.glob(PATTERN))

    def weight_files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        index = self.path / INDEX
        if index.is_file():
            try:
                names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModelLoadError(index, f"is not a valid checkpoint index: {exc!r}") from exc
            missing = [n for n in names if not (self.path / n).is_file()]
            if missing:
                raise ModelLoadError(index, f"names shards that are missing: {', '.join(missing)}")
            return [self.path / n for n in names]
        files = sorted(self.path.glob(PATTERN))
        if not files:
            raise ModelLoadError(self.path, f"holds no {PATTERN} files")
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
        files = self.weight_files()
        for file in progress(files, total=len(files), desc="Loading pt checkpoint shards",
                             enabled=self.load_config.use_tqdm_on_load):
            yield from _read(file, self.load_config.pt_load_map_location).items()


def _read(file: Path, map_location: "str | dict[str, str]" = "cpu") -> dict[str, "torch.Tensor"]:
    """``map_location``: --pt-load-map-location, as torch.load takes it."""
    import pickle
    import zipfile

    import torch

    try:
        # Memory-map where the format allows it (zip files; not the pre-2020 legacy format), onto the CPU.
        mmap = zipfile.is_zipfile(file) and map_location == "cpu"
        state = torch.load(file, map_location=map_location, weights_only=True, mmap=mmap)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(file, f"cannot be read as a PyTorch checkpoint: {first_line}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelLoadError(file, f"holds a {type(state).__name__}, not a state dict of named tensors")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ModelLoadError(file, f"has entries that are not tensors: {', '.join(map(str, not_tensors[:5]))}")
    return state
