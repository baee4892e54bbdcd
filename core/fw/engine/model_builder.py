"""From an EngineConfig to a model in memory: find the files, pick the loader, the
architecture, the dtype, the attention backend and the quantization method, build the
model and fill it with weights. With ``--tensor-parallel-size`` above 1 the model is split
across ranks (``fw.distributed``), and the engine gets rank 0's view of it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from fw import plugins
from fw.config import EngineConfig
from fw.engine import prepared_state, weight_cache
from fw.errors import ConfigurationError, ModelLoadError
from fw.model_loader.int4_grids import attach_int4_grids
from fw.models.interface import ModelContext
from fw.pooling.setup import PoolingSetup, resolve_pooling

logger = logging.getLogger("fw.engine")

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "half": torch.float16,
           "float32": torch.float32, "float": torch.float32}


@dataclass
class LoadedModel:
    model: nn.Module
    hf_config: Any
    #: None with --skip-tokenizer-init
    tokenizer: Any
    path: Path
    dtype: torch.dtype
    device: torch.device
    max_model_len: int
    attention_backend: str
    generation_config: dict
    #: stops what loading started (tensor-parallel workers); the engine calls it on shutdown
    shutdown: Callable[[], None] = lambda: None
    #: the model's pooling tasks and defaults (None: it only generates)
    pooling: PoolingSetup | None = None


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


def resolve_max_model_len(requested: int | None, hf_config: Any, *, cap: int | None = None) -> int:
    """``cap``: the sliding window, when --disable-sliding-window runs full attention."""
    derived = getattr(hf_config, "max_position_embeddings", None) or 2048
    scaling = getattr(hf_config, "rope_scaling", None) or {}
    if scaling.get("factor") and scaling.get("rope_type", scaling.get("type")) in ("linear", "dynamic", "llama3"):
        derived = int(derived * float(scaling["factor"]))
    if cap is not None and cap < derived:
        derived, why = cap, "its sliding window, with --disable-sliding-window"
    else:
        why = "max_position_embeddings, times the rope scaling factor if any"
    if requested is None:
        return int(derived)
    if requested > derived:
        raise ConfigurationError(
            f"--max-model-len {requested} exceeds the model's context of {derived} tokens ({why})"
        )
    return requested


def _hf_config(loader: Any, config: EngineConfig) -> Any:
    """The model's config, or the one --hf-config-path names."""
    folder = config.model.hf_config_path
    if folder is None:
        return loader.hf_config()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(Path(folder).expanduser(), trust_remote_code=config.model.trust_remote_code)
    except (ValueError, OSError) as exc:
        raise ModelLoadError(folder, f"--hf-config-path: no usable config.json: {exc}") from exc


def _drop_sliding_window(hf_config: Any) -> int | None:
    """--disable-sliding-window: full attention; returns the window the context is capped at."""
    window = getattr(hf_config, "sliding_window", None)
    if not isinstance(window, int) or getattr(hf_config, "use_sliding_window", True) is False:
        return None
    hf_config.sliding_window = None
    return window


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
    """The model the engine runs: loaded here, or split across tensor-parallel ranks with
    this process as rank 0."""
    if config.parallel.tensor_parallel_size > 1 or config.parallel.nnodes > 1:
        from fw.distributed.launch import build_tensor_parallel_model

        return build_tensor_parallel_model(config, device or resolve_device())
    return load_model(config, device)


def model_files(config: EngineConfig) -> tuple[Path, Any, Any]:
    """The model's path, its loader and its Hugging Face config (with the overrides)."""
    from fw.model_loader.select import get_loader, resolve_model

    resolved = resolve_model(config.model, config.load)  # hub ids: from the cache or downloaded
    path = resolved.path
    loader = get_loader(path, config.load, resolved.model_config)
    hf_config = _hf_config(loader, config)
    _apply_overrides(hf_config, config)
    return path, loader, hf_config


def load_model(config: EngineConfig, device: torch.device | None = None, *,
               shard: Callable[[nn.Module], None] | None = None) -> LoadedModel:
    """Build and load the whole model here; ``shard`` (tensor parallelism) then cuts the
    packed model down to this rank's part."""
    device = device or resolve_device()
    if device.type == "cpu":
        from fw_kernels.cpu import build

        build.start()  # a first start compiles fw's CPU kernels meanwhile
    path, loader, hf_config = model_files(config)
    window = _drop_sliding_window(hf_config) if config.model.disable_sliding_window else None
    architectures = list(getattr(hf_config, "architectures", None) or [])
    registry = plugins.registry("model")
    arch = next((a for a in architectures if a in registry), None)
    if arch is None:
        raise ModelLoadError(path, f"architecture {architectures or 'unknown'} is not supported; "
                                   f"supported: {', '.join(registry.names())}")
    model_cls = registry.load(arch)
    pooling = resolve_pooling(model_cls, hf_config, config.model, path)
    dtype = resolve_dtype(config.model.dtype, device)
    max_model_len = resolve_max_model_len(config.model.max_model_len, hf_config, cap=window)
    if pooling is not None and pooling.max_seq_length and config.model.max_model_len is None:
        max_model_len = min(max_model_len, pooling.max_seq_length)  # sentence-transformers' input limit
    backend = select_attention_backend(config.model.attention_backend, device)
    quantization = _quantization(config, loader, device, dtype)
    context = ModelContext(dtype=dtype, device=device, attention_backend=backend, quantization=quantization,
                           extra={"max_model_len": max_model_len})
    start = time.perf_counter()
    with torch.device(device):
        model = model_cls(hf_config, context)
    # Before the kernels are needed: a first start converts a GGUF tokenizer while they compile.
    tokenizer = None if config.model.skip_tokenizer_init else loader.tokenizer()
    cache = weight_cache.for_model(config, loader, model, context)
    cached = cache is not None and cache.restore(model)  # the weights as last prepared, memory-mapped
    if not cached:
        before = prepared_state.watch(model)
        _fill_weights(model, loader, path)
        if quantization is not None:
            attach_int4_grids(model, loader.int4_grids)  # a GPTQ/AWQ checkpoint's own 4-bit grid, for int4
        for module in model.modules():
            if callable(getattr(module, "post_load", None)):
                module.post_load()  # packing for the kernels that run them (fw.layers.packed)
        if cache is not None:
            cache.save(model, before)  # the whole model, before any tensor-parallel cut
    if shard is not None:
        shard(model)  # after packing: shards are cut from the packed weights, exactly
    model.eval()
    logger.info("loaded %s (%s, %s, %s attention) in %.1fs%s", arch, path.name, str(dtype).removeprefix("torch."),
                backend.name, time.perf_counter() - start, " (prepared weights from the cache)" if cached else "")
    return LoadedModel(model=model, hf_config=hf_config, tokenizer=tokenizer, path=path, dtype=dtype,
                       device=device, max_model_len=max_model_len, attention_backend=backend.name,
                       generation_config=loader.generation_config(), pooling=pooling)


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
