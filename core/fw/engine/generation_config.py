"""The sampling defaults requests get when they leave a field unset: the model's
generation_config.json (``--generation-config auto``), another folder's, or none
(``vllm``: the API's own defaults), with ``--override-generation-config`` on top.

Names are translated to vLLM's sampling names; ``max_new_tokens`` becomes ``max_tokens``,
which also caps every request's output (vLLM's server-wide limit). The EOS ids a
generation_config.json lists are the model's own and are read regardless.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fw.errors import FwError

logger = logging.getLogger("fw.engine")

#: generation_config.json key -> SamplingParams field
SAMPLING_KEYS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "min_p": "min_p",
                 "repetition_penalty": "repetition_penalty", "max_new_tokens": "max_tokens"}


def read_folder(folder: str) -> dict[str, Any]:
    file = Path(folder).expanduser() / "generation_config.json"
    try:
        return json.loads(file.read_text())
    except OSError as exc:
        raise FwError(f"--generation-config: cannot read {file}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise FwError(f"--generation-config: {file} is not valid JSON ({exc.msg})") from None


def sampling_defaults(mode: str, override: dict[str, Any], model_file: dict[str, Any]) -> dict[str, Any]:
    """SamplingParams defaults from ``--generation-config`` ``mode`` ("auto", "vllm" or a
    folder), the model's own generation_config.json (``model_file``) and ``override``."""
    source = model_file if mode == "auto" else {} if mode == "vllm" else read_folder(mode)
    merged = {**source, **override}
    defaults = {ours: merged[theirs] for theirs, ours in SAMPLING_KEYS.items() if merged.get(theirs) is not None}
    if defaults:
        logger.info("sampling defaults for fields requests leave unset: %s", ", ".join(
            f"{k}={v}" for k, v in sorted(defaults.items())))
    return defaults
