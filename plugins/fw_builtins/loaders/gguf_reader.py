"""A small reader for the GGUF container (spec: ggml's docs/gguf.md, versions 2 and 3).

Why not ``gguf.GGUFReader``: it builds numpy views for every element of every metadata
array, which takes ~5 s for SmolLM2's 100k vocabulary strings; this reader parses the
header in a fraction of that and checks every offset against the file size, so a
truncated or malformed file is reported with what exactly is wrong instead of a numpy
error deep in a loader. Tensor data stays in a read-only memory map.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from fw.errors import ModelLoadError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
#: ggml tensors have at most 4 dimensions
MAX_DIMS = 4

# metadata value type id -> (struct format, size) for the fixed-size scalars
_SCALARS = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?",
          10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    #: ggml order: shape[0] is the innermost (contiguous) dimension
    shape: tuple[int, ...]
    type: GGMLQuantizationType
    #: absolute position of the tensor's bytes in the file
    offset: int
    nbytes: int

    @property
    def torch_shape(self) -> tuple[int, ...]:
        """The shape in PyTorch order (outermost first), e.g. ``(out_features, in_features)``."""
        return tuple(reversed(self.shape))


class GGUFFile:
    """The parsed header of one GGUF file: ``metadata`` (key -> value) and ``tensors``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as handle:
                self.size = self.path.stat().st_size
                if self.size < 24:
                    raise ModelLoadError(self.path, f"is not a GGUF file: only {self.size} bytes")
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ModelLoadError(self.path, f"cannot be opened: {exc.strerror or exc}") from exc
        self._pos = 0
        self.metadata: dict[str, Any] = {}
        self.tensors: list[TensorInfo] = []
        self._parse()

    # -- the header ------------------------------------------------------------------

    def _parse(self) -> None:
        magic = self._take(4, "the magic number")
        if magic != MAGIC:
            raise ModelLoadError(self.path, f"is not a GGUF file: it starts with {magic!r}, not {MAGIC!r}")
        self.version = self._scalar(4, "the version")
        if self.version not in (2, 3):
            hint = " (a big-endian file?)" if self.version > 0xFFFF else ""
            raise ModelLoadError(self.path, f"has GGUF version {self.version}{hint}; fw reads versions 2 and 3")
        tensor_count = self._scalar(10, "the tensor count")
        kv_count = self._scalar(10, "the metadata count")
        # Each entry needs at least 8 bytes, so larger counts can only be corruption.
        for count, what in ((tensor_count, "tensor"), (kv_count, "metadata")):
            if count * 8 > self.size:
                raise ModelLoadError(self.path, f"malformed header: claims {count} {what} entries in {self.size} bytes")
        for _ in range(kv_count):
            key = self._string("a metadata key")
            value_type = self._scalar(4, f"the type of metadata {key!r}")
            self.metadata[key] = self._value(value_type, key)
        infos = [self._tensor_info() for _ in range(tensor_count)]
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise ModelLoadError(self.path, f"malformed header: general.alignment is {alignment!r}, not a power of two")
        data_start = -(-self._pos // alignment) * alignment
        for name, shape, ggml_type, relative in infos:
            self.tensors.append(self._locate(name, shape, ggml_type, data_start + relative))

    def _tensor_info(self) -> tuple[str, tuple[int, ...], int, int]:
        name = self._string("a tensor name")
        n_dims = self._scalar(4, f"the rank of tensor {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise ModelLoadError(self.path, f"malformed header: tensor {name!r} has {n_dims} dimensions")
        shape = tuple(self._scalar(10, f"the shape of tensor {name!r}") for _ in range(n_dims))
        ggml_type = self._scalar(4, f"the type of tensor {name!r}")
        return name, shape, ggml_type, self._scalar(10, f"the offset of tensor {name!r}")

    def _locate(self, name: str, shape: tuple[int, ...], type_id: int, offset: int) -> TensorInfo:
        try:
            ggml_type = GGMLQuantizationType(type_id)
            block_size, type_size = GGML_QUANT_SIZES[ggml_type]
        except (ValueError, KeyError):
            raise ModelLoadError(self.path, f"tensor {name!r} has unknown ggml type {type_id}") from None
        if shape[0] % block_size:
            raise ModelLoadError(
                self.path, f"malformed tensor {name!r}: its row of {shape[0]} values is not a whole "
                f"number of {ggml_type.name} blocks of {block_size}",
            )
        nbytes = int(np.prod(shape[1:], dtype=np.int64)) * (shape[0] // block_size) * type_size
        if offset + nbytes > self.size:
            raise ModelLoadError(
                self.path, f"is truncated: tensor {name!r} needs bytes up to {offset + nbytes} "
                f"but the file has {self.size} (was the download cut short?)",
            )
        return TensorInfo(name, shape, ggml_type, offset, nbytes)

    # -- primitive reads, each bounds-checked ----------------------------------------

    def _take(self, n: int, what: str) -> bytes:
        end = self._pos + n
        if end > self.size:
            raise ModelLoadError(
                self.path, f"is truncated or malformed: reading {what} needs byte {end} "
                f"but the file has {self.size}",
            )
        data = self._map[self._pos:end]
        self._pos = end
        return data

    def _scalar(self, value_type: int, what: str) -> Any:
        fmt, size = _SCALARS[value_type]
        return struct.unpack(fmt, self._take(size, what))[0]

    def _string(self, what: str) -> str:
        length = self._scalar(10, what)
        raw = self._take(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelLoadError(self.path, f"malformed header: {what} is not valid UTF-8") from None

    def _value(self, value_type: int, key: str) -> Any:
        what = f"metadata {key!r}"
        if value_type in _SCALARS:
            return self._scalar(value_type, what)
        if value_type == _STRING:
            return self._string(what)
        if value_type != _ARRAY:
            raise ModelLoadError(self.path, f"malformed header: {what} has unknown value type {value_type}")
        item_type = self._scalar(4, what)
        count = self._scalar(10, what)
        if item_type in _NUMPY:
            raw = self._take(count * _SCALARS[item_type][1], what)
            return np.frombuffer(raw, dtype=_NUMPY[item_type]).tolist()
        if item_type == _STRING:
            return [self._string(what) for _ in range(count)]
        if item_type == _ARRAY and count == 0:
            return []
        raise ModelLoadError(self.path, f"malformed header: {what} is an array of unsupported type {item_type}")

    # -- tensor data -----------------------------------------------------------------

    def raw(self, tensor: TensorInfo) -> np.ndarray:
        """The tensor's bytes as a read-only ``uint8`` array (a view of the memory map)."""
        return np.frombuffer(self._map, dtype=np.uint8, count=tensor.nbytes, offset=tensor.offset)
