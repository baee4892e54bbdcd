"""Sizing the KV cache on a GPU from a profiled peak, as vLLM does with
``--gpu-memory-utilization``.

fw may fill ``fraction * total`` of the device's memory. Before the KV cache exists, a
dummy forward pass at the largest step the scheduler can make (``max_num_batched_tokens``
tokens, and the LM head over ``max_num_seqs`` rows) measures the peak: the memory in use
before it (the weights, the CUDA context, anything else on the device) plus the most the
pass allocated beyond that (activations, workspaces). The KV cache gets what the peak
leaves of the fraction. A fraction the peak alone exceeds is a start-up error naming the
numbers.

The arithmetic (``kv_budget``) reads memory through a ``MemoryReader``, so tests give it
a fake one; ``CudaMemory`` reads torch's CUDA allocator and ``cudaMemGetInfo``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from fw.errors import ConfigurationError

logger = logging.getLogger("fw.engine")

GiB = 2**30


class MemoryReader(Protocol):
    def info(self) -> tuple[int, int]:
        """(free, total) bytes of the device."""

    def allocated(self) -> int:
        """Bytes this process's tensors hold now."""

    def reset_peak(self) -> None: ...

    def peak(self) -> int:
        """The most bytes this process's tensors held since ``reset_peak``."""


class CudaMemory:
    def __init__(self, device: torch.device):
        self.device = device

    def info(self) -> tuple[int, int]:
        torch.cuda.synchronize(self.device)
        return torch.cuda.mem_get_info(self.device)

    def allocated(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def reset_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def peak(self) -> int:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device)


@dataclass
class MemoryProfile:
    total: int
    #: in use before the dummy pass: the weights, the CUDA context, other processes
    in_use: int
    #: the most the dummy pass allocated beyond what was allocated before it
    activation_peak: int
    fraction: float

    @property
    def requested(self) -> int:
        return int(self.fraction * self.total)

    @property
    def peak(self) -> int:
        return self.in_use + self.activation_peak

    @property
    def kv_bytes(self) -> int:
        return self.requested - self.peak

    def describe(self) -> str:
        return (f"{self.fraction:g} of {self.total / GiB:.2f} GiB = {self.requested / GiB:.2f} GiB; in use before "
                f"the KV cache {self.in_use / GiB:.2f} GiB (weights, context), activation peak "
                f"{self.activation_peak / GiB:.2f} GiB; KV cache {max(self.kv_bytes, 0) / GiB:.2f} GiB")


def kv_budget(run_dummy: Callable[[], None], reader: MemoryReader, fraction: float) -> MemoryProfile:
    """Profile ``run_dummy`` (the largest step) and size the KV cache from its peak."""
    free, total = reader.info()
    before = reader.allocated()
    reader.reset_peak()
    run_dummy()
    profile = MemoryProfile(total=total, in_use=total - free, activation_peak=max(0, reader.peak() - before),
                            fraction=fraction)
    if profile.kv_bytes <= 0:
        raise ConfigurationError(
            f"--gpu-memory-utilization {fraction:g}: {profile.describe()}: nothing is left for the KV cache; "
            "raise --gpu-memory-utilization, or lower --max-num-batched-tokens / --max-num-seqs")
    logger.info("GPU memory: %s", profile.describe())
    return profile


def dummy_step(model, device: torch.device, dtype: torch.dtype, *, block_size: int, max_num_batched_tokens: int,
               max_model_len: int, max_num_seqs: int) -> Callable[[], None]:
    """The largest step as a dummy forward pass: ``max_num_batched_tokens`` prompt tokens
    (in sequences of at most ``max_model_len``) over a throwaway KV cache just large enough,
    then the LM head over ``max_num_seqs`` rows. The cache's bytes count in the peak, as
    the step's real cache blocks would."""
    from fw.attention.context import forward_context
    from fw.attention.metadata import AttentionMetadata
    from fw.engine.kv_sizing import attention_layers

    def run() -> None:
        tokens = max_num_batched_tokens
        lens = [min(max_model_len, tokens - start) for start in range(0, tokens, max_model_len)]
        blocks = [-(-n // block_size) for n in lens]
        layers = attention_layers(model)
        previous = [layer.kv_cache for layer in layers]
        caches = [torch.zeros(2, sum(blocks) + 1, block_size, layer.num_kv_heads, layer.head_size, dtype=dtype,
                              device=device) for layer in layers]
        table = torch.zeros(len(lens), max(blocks), dtype=torch.int32)
        first = 0
        for i, count in enumerate(blocks):
            table[i, :count] = torch.arange(first, first + count)
            first += count
        positions = torch.cat([torch.arange(n) for n in lens])
        owner = torch.repeat_interleave(torch.arange(len(lens)), torch.tensor(lens))
        slots = table[owner, positions // block_size].long() * block_size + positions % block_size
        starts = [0]
        for n in lens:
            starts.append(starts[-1] + n)
        meta = AttentionMetadata(
            num_tokens=tokens, num_seqs=len(lens), max_query_len=max(lens), max_seq_len=max(lens),
            query_start_loc=torch.tensor(starts, dtype=torch.int32, device=device),
            seq_lens=torch.tensor(lens, dtype=torch.int32, device=device), block_table=table.to(device),
            slot_mapping=slots.to(device), query_start_loc_host=starts, seq_lens_host=lens)
        try:
            for layer, cache in zip(layers, caches):
                layer.kv_cache = cache
            with torch.inference_mode(), forward_context(meta):
                hidden = model(torch.zeros(tokens, dtype=torch.long, device=device), positions.to(device))
                if hasattr(model, "compute_logits"):
                    model.compute_logits(hidden[:max_num_seqs]).float().softmax(-1)
        finally:
            for layer, cache in zip(layers, previous):
                layer.kv_cache = cache
            del caches

    return run


def profile_for(loaded, cache_config, scheduler_config, max_model_len: int) -> MemoryProfile | None:
    """The engine's profile: on CUDA when neither --kv-cache-memory-bytes nor
    --num-gpu-blocks-override sizes the cache; else None."""
    if (loaded.device.type != "cuda" or cache_config.kv_cache_memory_bytes is not None
            or cache_config.num_gpu_blocks_override is not None):
        return None
    from fw.engine.kv_sizing import GPU_DEFAULT_FRACTION

    fraction = cache_config.gpu_memory_utilization or GPU_DEFAULT_FRACTION
    run = dummy_step(loaded.model, loaded.device, loaded.dtype, block_size=cache_config.block_size,
                     max_num_batched_tokens=scheduler_config.max_num_batched_tokens, max_model_len=max_model_len,
                     max_num_seqs=scheduler_config.max_num_seqs)
    return kv_budget(run, CudaMemory(loaded.device), fraction)
