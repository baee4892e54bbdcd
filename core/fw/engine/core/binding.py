"""Which CPU cores each engine core of this machine runs on.

Data parallel ranks on one machine split its cores between them, each pinned to its own
and with as many threads as it has cores: two ranks sharing cores would have their
thread pools spin against each other. ``FW_CPU_OMP_THREADS_BIND`` overrides the split,
as vLLM's ``VLLM_CPU_OMP_THREADS_BIND`` does: ``auto`` (the default), ``nobind`` (no
pinning), or one core list per local rank separated by ``|`` (``0-3|4-7``, ``0,2|1,3``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV = "FW_CPU_OMP_THREADS_BIND"


@dataclass
class CoreBinding:
    #: the cores to pin to (None: no pinning)
    cpus: list[int] | None = None

    def apply(self) -> None:
        """Pin this process and size torch's thread pool (call before torch computes)."""
        if not self.cpus:
            return
        os.sched_setaffinity(0, self.cpus)
        os.environ["OMP_NUM_THREADS"] = str(len(self.cpus))
        import torch

        torch.set_num_threads(len(self.cpus))

    def describe(self) -> str:
        return "not pinned" if not self.cpus else f"cores {_ranges(self.cpus)}"


def _parse_list(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def _ranges(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus) if len(cpus) < 3 or cpus != list(range(cpus[0], cpus[-1] + 1)) \
        else f"{cpus[0]}-{cpus[-1]}"


def plan_bindings(local_ranks: int, setting: str | None = None) -> list[CoreBinding]:
    """One binding per data parallel rank on this machine."""
    setting = (setting if setting is not None else os.environ.get(ENV, "auto")).strip()
    if setting == "nobind":
        return [CoreBinding() for _ in range(local_ranks)]
    if setting != "auto":
        lists = setting.split("|")
        if len(lists) != local_ranks:
            raise ValueError(f"{ENV}={setting!r} gives {len(lists)} core lists for {local_ranks} local data "
                             "parallel ranks")
        try:
            return [CoreBinding(_parse_list(text)) for text in lists]
        except ValueError:
            raise ValueError(f"{ENV}={setting!r}: core lists look like 0-3|4-7 or 0,2|1,3") from None
    if local_ranks == 1:
        return [CoreBinding()]
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < local_ranks:  # more ranks than cores: each shares one, round robin
        return [CoreBinding([cores[rank % len(cores)]]) for rank in range(local_ranks)]
    share, extra = divmod(len(cores), local_ranks)
    bindings, start = [], 0
    for rank in range(local_ranks):
        size = share + (1 if rank < extra else 0)
        bindings.append(CoreBinding(cores[start:start + size]))
        start += size
    return bindings
