"""From an EngineConfig to a model in memory: find the files, pick the loader, the
architecture, the dtype, the attention backend and the quantization method, build the
model and fill it with weights."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fw import plugins
from fw.config import EngineConfig
from fw.errors import ConfigurationError, ModelLoadError
from fw.models.interface import ModelContext

logger = logging.getLogger("fw.engine")

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "half": torch.float16,
           "float32": torch.float32, "float": torch.float32}


@dataclass
class LoadedModel:
    model: nn.Module
    hf_config: Any
    tokenizer: Any
    path: Path
    dtype: torch.dtype
    device: torch.device
    max_model_len: int
    attention_backend: str
    generation_config: dict


def resolve_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 where the hardware computes in it natively, else float32."""
    if name != "auto":
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32


def select_attention_backend(name: str, device: torch.device) -> type:
    registry = plugins.registry("attention_backend")
    if name != "auto":
        backend = registry.load(name)
        if not backend.supports(device):
            raise ConfigurationError(f"attention backend {name!r} cannot run on {device.type}")
        return backend
    candidates = [registry.load(n) for n in registry.names()]
    usable = [b for b in candidates if b.supports(device)]
    if not usable:
        raise ConfigurationError(f"no attention backend supports {device.type}; installed: {registry.names()}")
    return max(usable, key=lambda b: b.priority(device))


def _apply_overrides(hf_config: Any, config: EngineConfig) -> None:
    model = config.model
    for key, value in model.hf_overrides.items():
        setattr(hf_config, key, value)
    if model.rope_scaling or model.rope_theta is not None:
        params = dict(getattr(hf_config, "rope_parameters", None) or {})
        if model.rope_scaling:
            params.update(model.rope_scaling)
            hf_config.rope_scaling = dict(model.rope_scaling)
        if model.rope_theta is not None:
            params["rope_theta"] = model.rope_theta
            hf_config.rope_theta = model.rope_theta
        if hasattr(hf_config, "rope_parameters"):
            hf_config.rope_parameters = params


def resolve_max_model_len(requested: int | None, hf_config: Any) -> int:
    derived = getattr(hf_config, "max_position_embeddings", None) or 2048
    scaling = getattr(hf_config, "rope_scaling", None) or {}
    if scaling.get("factor") and scaling.get("rope_type", scaling.get("type")) in ("linear", "dynamic", "llama3"):
        derived = int(derived * float(scaling["factor"]))
    if requested is None:
        return int(derived)
    if requested > derived:
        raise ConfigurationError(
            f"--max-model-len {requested} exceeds the model's context of {derived} tokens "
            f"(max_position_embeddings, times the rope scaling factor if any)"
        )
    return requested


def _quantization(config: EngineConfig, loader: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """--quantization, else what the file calls for: a GGUF file of quantized tensors is
    served from its own blocks (``gguf``) on a CPU in bfloat16 (in float32, the parity
    dtype, it is dequantized to the file's values)."""
    name = config.model.quantization
    if name is None:
        name = loader.default_quantization()
        if name is not None and not (device.type == "cpu" and dtype == torch.bfloat16):
            name = None
        if name is not None:
            logger.info("quantization: %s (the file's own quantized weights; --quantization none for bf16)", name)
    return plugins.load("quantization", name)() if name else None


def build_model(config: EngineConfig, device: torch.device | None = None) -> LoadedModel:
    from fw.model_loader.select import get_loader, resolve_model_path

    device = device or resolve_device()
    path = resolve_model_path(config.model.model)
    loader = get_loader(path, config.load, config.model)
    hf_config = loader.hf_config()
    _apply_overrides(hf_config, config)
    architectures = list(getattr(hf_config, "architectures", None) or [])
    registry = plugins.registry("model")
    arch = next((a for a in architectures if a in registry), None)
    if arch is None:
        raise ModelLoadError(path, f"architecture {architectures or 'unknown'} is not supported; "
                                   f"supported: {', '.join(registry.names())}")
    model_cls = registry.load(arch)
    dtype = resolve_dtype(config.model.dtype, device)
    max_model_len = resolve_max_model_len(config.model.max_model_len, hf_config)
    backend = select_attention_backend(config.model.attention_backend, device)
    quantization = _quantization(config, loader, device, dtype)
    context = ModelContext(dtype=dtype, device=device, attention_backend=backend, quantization=quantization,
                           extra={"max_model_len": max_model_len})
    start = time.perf_counter()
    with torch.device(device):
        model = model_cls(hf_config, context)
    _fill_weights(model, loader, path)
    for module in model.modules():
        if callable(getattr(module, "post_load", None)):
            module.post_load()  # packing for the kernels that run them (fw.layers.packed)
    model.eval()
    logger.info("loaded %s (%s, %s, %s attention) in %.1fs", arch, path.name, str(dtype).removeprefix("torch."),
                backend.name, time.perf_counter() - start)
    return LoadedModel(model=model, hf_config=hf_config, tokenizer=loader.tokenizer(), path=path, dtype=dtype,
                       device=device, max_model_len=max_model_len, attention_backend=backend.name,
                       generation_config=loader.generation_config())


def _fill_weights(model: nn.Module, loader: Any, path: Path) -> None:
    if loader.random_init:
        generator = torch.Generator().manual_seed(0)
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.data.fill_(1.0)
            else:
                param.data.copy_(torch.randn(param.shape, generator=generator) * 0.02)
        return
    try:
        loaded = model.load_weights(loader.iter_weights())
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(path, f"weights do not fit the model: {exc}") from exc
    missing = sorted(set(dict(model.named_parameters())) - loaded)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelLoadError(path, f"the checkpoint lacks {len(missing)} weights the model needs: {shown}")
