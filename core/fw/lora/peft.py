"""Reading a LoRA adapter saved by the ``peft`` package.

The folder holds ``adapter_config.json`` and ``adapter_model.safetensors`` (or the older
``adapter_model.bin``). Each adapted module ``M`` has two tensors, ``M.lora_A.weight``
(``[r, in]``) and ``M.lora_B.weight`` (``[out, r]``), and adds ``scale * B @ A @ x`` to
its output, where ``scale = lora_alpha / r`` (``lora_alpha / sqrt(r)`` with
``use_rslora``). This module only reads and checks the files; fitting the adapter to a
model is ``fw.lora.targets``' job.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fw.errors import LoRAAdapterError
from fw.lora.paths import CONFIG_FILE

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")

#: ``base_model.model.<module>.lora_A[.<adapter name>].weight``
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")

#: adapter variants whose math differs from plain LoRA (config key -> what it is)
_UNSUPPORTED_FLAGS = {
    "use_dora": "DoRA (use_dora)", "lora_bias": "a LoRA bias (lora_bias)",
    "fan_in_fan_out": "transposed weights (fan_in_fan_out)", "use_qalora": "QA-LoRA (use_qalora)",
    "use_bdlora": "BD-LoRA (use_bdlora)", "layer_replication": "layer replication",
    "trainable_token_indices": "trainable tokens (trainable_token_indices)",
}


@dataclass
class ModuleLoRA:
    """One adapted module: its two matrices and the scale applied to ``B @ A @ x``."""

    lora_a: torch.Tensor  # [r, in]
    lora_b: torch.Tensor  # [out, r]
    scale: float

    @property
    def rank(self) -> int:
        return self.lora_a.shape[0]


@dataclass
class PeftAdapter:
    name: str
    path: Path
    #: Hugging Face module name (``model.layers.0.self_attn.q_proj``) -> its matrices
    modules: dict[str, ModuleLoRA]
    #: ``target_modules`` of the config when it is a list (None for a regex or absent)
    target_modules: list[str] | None
    #: tensors that are not LoRA pairs (e.g. a saved lm_head); fitting refuses them, after
    #: the clearer complaint about an unsupported target
    unexpected: list[str]

    @property
    def rank(self) -> int:
        return max(m.rank for m in self.modules.values())


def read_peft_adapter(name: str, path: str | Path) -> PeftAdapter:
    """Read and check an adapter folder; every problem raises ``LoRAAdapterError``."""
    if not str(path):
        raise LoRAAdapterError(name, path, "no lora_path given")
    folder = Path(path)  # as given: "~" is not expanded
    try:
        is_dir, exists = folder.is_dir(), folder.exists()
    except OSError as exc:  # e.g. PermissionError: not the client's mistake to see as a 500
        raise LoRAAdapterError(name, path, f"the folder cannot be read ({type(exc).__name__})") from None
    if not is_dir:
        raise LoRAAdapterError(name, path, "the folder does not exist" if not exists
                               else "not a folder (expected a PEFT adapter folder)")
    config = _read_config(name, folder)
    tensors = _read_tensors(name, folder)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    unexpected = []
    for key, tensor in tensors.items():
        match = _KEY.match(key)
        if match is None:
            unexpected.append(key)
            continue
        pairs.setdefault(match["module"], {})[match["ab"]] = tensor
    if not pairs:
        raise LoRAAdapterError(name, folder, "the weights file holds no LoRA tensors")
    modules = {}
    for module, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise LoRAAdapterError(name, folder, f"{module} has lora_{''.join(pair)} but not both lora_A and lora_B")
        a, b = pair["A"], pair["B"]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise LoRAAdapterError(name, folder, f"{module}: lora_A {tuple(a.shape)} and lora_B "
                                                 f"{tuple(b.shape)} do not form a LoRA pair")
        modules[module] = ModuleLoRA(a, b, _scale(config, module, a.shape[0]))
    targets = config.get("target_modules")
    return PeftAdapter(name, folder, modules, list(targets) if isinstance(targets, list) else None, unexpected)


def _read_config(name: str, folder: Path) -> dict[str, Any]:
    """The adapter's config. Errors say what is wrong without quoting the file (no parse
    positions, no values): a loader must not become a way to read files."""
    file = folder / CONFIG_FILE
    try:
        if not file.is_file():
            raise LoRAAdapterError(name, folder, f"{CONFIG_FILE} is missing")
        text = file.read_text()
    except (OSError, UnicodeDecodeError):
        raise LoRAAdapterError(name, folder, f"{CONFIG_FILE} cannot be read") from None
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise LoRAAdapterError(name, folder, f"{CONFIG_FILE} is not valid JSON") from None
    if not isinstance(config, dict):
        raise LoRAAdapterError(name, folder, f"{CONFIG_FILE} is not a JSON object")
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise LoRAAdapterError(name, folder, "its peft_type is not LORA; fw serves LORA adapters only")
    for key, what in _UNSUPPORTED_FLAGS.items():
        if config.get(key):
            raise LoRAAdapterError(name, folder, f"the adapter uses {what}, which fw does not support")
    if config.get("bias", "none") != "none":
        raise LoRAAdapterError(name, folder, "the adapter trains biases (bias is not \"none\"), "
                                             "which fw does not support")
    if config.get("modules_to_save"):
        raise LoRAAdapterError(name, folder, "the adapter replaces whole modules (modules_to_save), "
                                             "which fw does not support")
    return config


def _read_tensors(name: str, folder: Path) -> dict[str, torch.Tensor]:
    for file_name in WEIGHT_FILES:
        file = folder / file_name
        if not file.is_file():
            continue
        try:
            if file.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(file))
            return torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the adapter's problem
            # the reader's message can quote the file's header: name only the kind of failure
            raise LoRAAdapterError(name, folder, f"cannot read {file_name} ({type(exc).__name__}); "
                                                 "is it a complete, valid weights file?") from None
    raise LoRAAdapterError(name, folder, f"no weights file ({' or '.join(WEIGHT_FILES)})")


def _scale(config: dict[str, Any], module: str, rank: int) -> float:
    """``alpha / r`` (or ``alpha / sqrt(r)``), with per-module ``alpha_pattern`` overrides.

    ``r`` is the module's real rank (the tensor's), which already reflects any
    ``rank_pattern`` entry.
    """
    alpha = float(config.get("lora_alpha", 8))
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if re.fullmatch(rf"(.*\.)?{pattern}", module):
            alpha = float(value)
            break
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
