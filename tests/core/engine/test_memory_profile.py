"""--gpu-memory-utilization on a GPU, vLLM's method, with a fake memory reader: the KV
cache gets ``fraction * total`` less the memory in use before profiling and the peak the
largest step allocates; a fraction the peak alone exceeds is a start-up error naming the
numbers. The dummy step itself runs on the CPU here, over the tiny checkpoint."""

from __future__ import annotations

import pytest
import torch

from fw.engine.kv_sizing import plan_kv_cache
from fw.engine.memory_profile import dummy_step, kv_budget
from fw.errors import ConfigurationError

GiB = 2**30


class FakeMemory:
    """A device of ``total`` bytes with ``used`` in use; the dummy step allocates ``step``
    bytes at its peak."""

    def __init__(self, total: int, used: int, allocated: int, step: int):
        self.total, self.used, self.now, self.step, self.top = total, used, allocated, step, allocated

    def info(self):
        return self.total - self.used, self.total

    def allocated(self):
        return self.now

    def reset_peak(self):
        self.top = self.now

    def peak(self):
        return self.top

    def run(self):
        self.top = max(self.top, self.now + self.step)


def test_the_kv_cache_gets_the_fraction_less_the_profiled_peak():
    memory = FakeMemory(total=80 * GiB, used=3 * GiB, allocated=2 * GiB, step=5 * GiB)
    profile = kv_budget(memory.run, memory, 0.9)
    assert profile.requested == int(0.9 * 80 * GiB)
    assert profile.peak == 3 * GiB + 5 * GiB
    assert profile.kv_bytes == int(0.9 * 80 * GiB) - 8 * GiB
    assert "KV cache 64.00 GiB" in profile.describe()


def test_a_fraction_below_the_peak_is_refused_with_the_numbers():
    memory = FakeMemory(total=16 * GiB, used=6 * GiB, allocated=6 * GiB, step=4 * GiB)
    with pytest.raises(ConfigurationError, match=r"--gpu-memory-utilization 0.5: .*activation peak 4.00 GiB"):
        kv_budget(memory.run, memory, 0.5)


def test_the_dummy_step_runs_the_largest_step_and_the_plan_takes_the_budget(tiny_llama):
    from fw import LLM
    from fw.engine.kv_sizing import attention_layers

    llm = LLM(str(tiny_llama), dtype="float32", max_model_len=64, kv_cache_memory_bytes=2**20)
    model = llm.engine.loaded.model
    caches = [layer.kv_cache for layer in attention_layers(model)]
    memory = FakeMemory(total=GiB, used=0, allocated=0, step=0)
    ran = []
    step = dummy_step(model, torch.device("cpu"), torch.float32, block_size=16, max_num_batched_tokens=150,
                      max_model_len=64, max_num_seqs=8)
    profile = kv_budget(lambda: ran.append(step()), memory, 0.5)
    assert ran and [layer.kv_cache for layer in attention_layers(model)] == caches  # the engine's caches are back
    plan = plan_kv_cache(model, torch.float32, torch.device("cpu"), block_size=16, memory_bytes=None,
                         num_blocks_override=None, max_model_len=10**6, max_num_seqs=10**4,
                         profiled_bytes=profile.kv_bytes // 1000)
    assert plan.total_bytes <= profile.kv_bytes // 1000 < plan.total_bytes + plan.bytes_per_block
