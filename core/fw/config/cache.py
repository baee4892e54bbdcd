"""CacheConfig: the paged KV cache."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from fw.config.base import ConfigGroup, option

#: --kv-cache-dtype values that store one byte per element with per-token-per-head scales
QUANTIZED_KV_DTYPES = ("int8", "fp8", "fp8_e4m3")


class CacheConfig(ConfigGroup):
    group_title = "CacheConfig"
    group_help = "Configuration for the KV cache."

    block_size: Literal[1, 8, 16, 32, 64, 128] = option(
        16, "Size of a contiguous cache block in number of tokens."
    )
    kv_cache_memory_bytes: int | None = option(
        None,
        "Size of the KV cache in bytes (k/m/g/K/M/G suffixes accepted: 512M, 2G). If "
        "unspecified, fw takes a share of the memory that is free after loading the model.",
        size=True,
    )
    kv_cache_dtype: Literal["auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "int8"] = option(
        "auto",
        'Data type of the KV cache. "auto" keeps keys and values in the model\'s dtype; "bfloat16" is '
        'that for a bfloat16 model; "int8" stores each token\'s keys and values of each head as int8 with a '
        'float32 scale computed when the token is written (its absolute maximum / 127); "fp8" (= "fp8_e4m3") '
        "stores them as float8 e4m3 with a scale of 1.0 (values beyond +-448 saturate), or with "
        "--calculate-kv-scales a scale per token and head (absolute maximum / 448). The scales sit in the paged "
        "cache beside each row, so a quantized cache holds about twice as many tokens at the same memory.",
        unsupported={"fp8_e5m2": "fw stores fp8 KV caches as e4m3 only; use fp8 (= fp8_e4m3) or int8",
                     "fp8_inc": "fp8_inc is Intel Gaudi's (HPU) format; use fp8 or int8"},
    )
    calculate_kv_scales: bool = option(
        False,
        "With --kv-cache-dtype fp8: compute a scale per token and KV head when the token is written (its "
        "absolute maximum / 448) instead of the default scale of 1.0. fw never loads KV scales from a "
        "checkpoint. int8 computes these scales always; with an unquantized cache the option is refused.",
    )
    num_gpu_blocks_override: int | None = option(
        None,
        "Number of KV-cache blocks to allocate, overriding the memory-based size (on any "
        "device; the name is vLLM's). Used for testing preemption.",
    )
    enable_prefix_caching: bool = option(
        True, "Reuse the KV cache of identical prompt prefixes across requests."
    )
    gpu_memory_utilization: float | None = option(
        None,
        "On CUDA, the fraction of the device's memory fw may fill (weights, activations and the KV "
        "cache; the KV cache gets what is left of it); 0.9 if unset. On a CPU, where --kv-cache-memory-bytes sizes "
        "the KV cache (as vLLM's CPU backend sizes it with VLLM_CPU_KVCACHE_SPACE), a given value "
        "is accepted with a notice.",
        gt=0, le=1,
    )
    swap_space: float = option(
        0,
        "CPU swap space per GPU (GiB) for KV blocks of preempted requests.",
        unsupported="fw preempts by recomputation (as vLLM V1 does) and never swaps KV blocks out; "
                    "drop --swap-space",
    )
    cpu_offload_gb: float = option(
        0,
        "GiB of the weights to keep in CPU memory and stream to the GPU at every forward pass.",
        unsupported="fw does not offload weights: on a CPU they already live in host memory, on "
                    "CUDA they must fit the device; use a quantized model or a smaller one",
    )
    prefix_caching_hash_algo: Literal["builtin", "sha256", "sha256_cbor"] = option(
        "builtin",
        'How prefix-cache blocks are keyed: "builtin" uses Python\'s hash (fast; a hit is also '
        'checked token by token), "sha256" a SHA-256 of the parent key, the adapter and the block\'s '
        "tokens (collision-resistant).",
        unsupported={"sha256_cbor": "fw does not serialize blocks as CBOR; use sha256"},
    )
    kv_sharing_fast_prefill: bool = option(
        False,
        "Skip prefill tokens in layers that share another layer's KV cache (YOCO-style models).",
        unsupported="fw serves no models with cross-layer KV sharing",
    )
    mamba_cache_dtype: Literal["auto", "float32"] = option(
        "auto", "Data type of the Mamba cache.", unsupported="fw serves no Mamba models"
    )
    mamba_ssm_cache_dtype: Literal["auto", "float32"] = option(
        "auto", "Data type of the Mamba SSM state.", unsupported="fw serves no Mamba models"
    )

    @model_validator(mode="after")
    def _kv_scales(self) -> "CacheConfig":
        if self.calculate_kv_scales and self.kv_cache_dtype not in QUANTIZED_KV_DTYPES:
            raise ValueError(f"--calculate-kv-scales computes the scales of a quantized KV cache; with "
                             f"--kv-cache-dtype {self.kv_cache_dtype} there are none (use --kv-cache-dtype fp8)")
        return self
