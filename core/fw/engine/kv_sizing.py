"""How many KV blocks to allocate, and the allocation itself.

Without ``--kv-cache-memory-bytes`` fw takes, on a CPU, a quarter of the memory available
after loading the model (at most 2 GiB); on a GPU, what the profiled peak of the largest
step leaves of ``--gpu-memory-utilization`` (0.9) of the device's memory
(``fw.engine.memory_profile``, vLLM's method: the fraction fw may fill in all). Never more than ``max_num_seqs`` full-length
sequences could use. On a CPU, a given ``--gpu-memory-utilization`` is accepted with a
notice that ``--kv-cache-memory-bytes`` governs, as on vLLM's CPU backend.

A cache that cannot hold one request of ``max_model_len`` tokens is caught at start-up
(``fit_max_model_len``), not by every later request that leaves max_tokens unset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from fw.attention.kv_format import KVCacheFormat
from fw.engine import huge_pages
from fw.engine.kv_cache_manager import cdiv
from fw.errors import ConfigurationError, FwError
from fw.layers.attention import Attention

logger = logging.getLogger("fw.engine")

CPU_DEFAULT_FRACTION = 0.25
CPU_DEFAULT_CAP = 2 * 1024**3
GPU_DEFAULT_FRACTION = 0.9


@dataclass
class KVPlan:
    num_blocks: int
    block_size: int
    bytes_per_block: int
    #: how keys and values are stored (``--kv-cache-dtype``)
    kv_format: KVCacheFormat = KVCacheFormat()

    @property
    def num_tokens(self) -> int:
        return self.num_blocks * self.block_size

    @property
    def total_bytes(self) -> int:
        return self.num_blocks * self.bytes_per_block


def _available_memory(device: torch.device, gpu_memory_utilization: float | None = None) -> int:
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        fraction = GPU_DEFAULT_FRACTION if gpu_memory_utilization is None else gpu_memory_utilization
        # the share fw may fill, less what is in use already (the weights, other processes)
        return max(0, int(fraction * total) - (total - free))
    if gpu_memory_utilization is not None:
        logger.info("--gpu-memory-utilization applies to GPU memory; on a CPU the KV cache is sized by "
                    "--kv-cache-memory-bytes (else a quarter of the available memory, at most 2 GiB)")
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    return min(int(available * CPU_DEFAULT_FRACTION), CPU_DEFAULT_CAP)
    except OSError:
        pass
    return 1024**3


def attention_layers(model: nn.Module) -> list[Attention]:
    return [m for m in model.modules() if isinstance(m, Attention)]


def plan_kv_cache(model: nn.Module, dtype: torch.dtype, device: torch.device, *, block_size: int,
                  memory_bytes: int | None, num_blocks_override: int | None, max_model_len: int,
                  max_num_seqs: int, gpu_memory_utilization: float | None = None,
                  extra_layers: list[Attention] = (), profiled_bytes: int | None = None,
                  kv_format: KVCacheFormat = KVCacheFormat()) -> KVPlan:
    """A block's bytes are those of ``kv_format`` (a quantized cache: one byte per element
    and a float32 scale per token and head). ``extra_layers``: attention layers of another model whose caches use the same block
    ids (a speculative draft model); a block's bytes count theirs too. ``profiled_bytes``:
    the KV budget a GPU memory profile found (``fw.engine.memory_profile``)."""
    layers = attention_layers(model) + list(extra_layers)
    if not layers:  # an encoder: blocks are the scheduler's bookkeeping only, and hold no memory
        return KVPlan(max_num_seqs * cdiv(max_model_len, block_size) + 1, block_size, 0, kv_format)
    per_block = sum(block_size * kv_format.bytes_per_token(layer.num_kv_heads, layer.head_size, dtype)
                    for layer in layers)
    if num_blocks_override is not None:
        num_blocks = num_blocks_override
    else:
        budget = (memory_bytes if memory_bytes is not None else profiled_bytes if profiled_bytes is not None
                  else _available_memory(device, gpu_memory_utilization))
        num_blocks = budget // per_block
        if memory_bytes is None:
            num_blocks = min(num_blocks, max_num_seqs * cdiv(max_model_len, block_size) + 1)
    if num_blocks < 1:
        raise FwError(
            f"the KV cache has room for no block of {block_size} tokens ({per_block} bytes each); "
            "raise --kv-cache-memory-bytes"
        )
    return KVPlan(int(num_blocks), block_size, per_block, kv_format)


def allocate_kv_caches(model: nn.Module, plan: KVPlan, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    """One tensor per attention layer in the plan's format (``fw.attention.kv_format``) (on huge pages where the OS allows: a step reads the whole cache,
    scattered); each layer is told the format."""
    fmt, caches = plan.kv_format, []
    for layer in attention_layers(model):
        layer.set_kv_format(fmt)
        shape = fmt.shape(plan.num_blocks, plan.block_size, layer.num_kv_heads, layer.head_size)
        caches.append(huge_pages.zeros(*shape, dtype=fmt.storage_dtype(dtype), device=device))
    return caches


def fit_max_model_len(plan: KVPlan, max_model_len: int, *, explicit: bool) -> int:
    """The context length the cache can serve. When one request of ``max_model_len``
    tokens does not fit: a start-up error naming the numbers if --max-model-len was given,
    else the cache's size, with a warning saying so (as vLLM does)."""
    if plan.num_tokens >= max_model_len:
        return max_model_len
    size = f"{plan.num_tokens} tokens ({plan.num_blocks} blocks of {plan.block_size}, {plan.total_bytes / 2**20:.1f} MiB)"
    if explicit:
        raise ConfigurationError(
            f"--max-model-len {max_model_len}: the KV cache holds {size}, less than one request of that "
            f"length needs; lower --max-model-len to at most {plan.num_tokens} or give the cache more memory "
            "(--kv-cache-memory-bytes)")
    logger.warning("the KV cache holds %s, less than the model's context length of %d tokens; serving with "
                   "--max-model-len %d (give the cache more memory with --kv-cache-memory-bytes)",
                   size, max_model_len, plan.num_tokens)
    return plan.num_tokens
