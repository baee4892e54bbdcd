"""CacheConfig: the paged KV cache."""

from __future__ import annotations

from typing import Literal

from fw.config.base import ConfigGroup, option


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
    num_gpu_blocks_override: int | None = option(
        None,
        "Number of KV-cache blocks to allocate, overriding the memory-based size (on any "
        "device; the name is vLLM's). Used for testing preemption.",
    )
    enable_prefix_caching: bool = option(
        True, "Reuse the KV cache of identical prompt prefixes across requests."
    )
