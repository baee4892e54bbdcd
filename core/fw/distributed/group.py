"""The process groups of one tensor-parallel model and what travels on them.

Two groups over one rendezvous: a *control* group (gloo, over the CPU) on which rank 0
sends each step's message to the workers, and a *compute* group (gloo on a CPU, NCCL on
CUDA) for the all-reduces, the logits gather and the hidden states. A worker waits on the
control group for as long as the server runs, idle or not, so that group never times out;
a collective of the forward pass that stalls fails after ``STEP_TIMEOUT``.

torch.distributed keeps its groups per process, so a process holds one tensor-parallel
model at a time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from fw.errors import ConfigurationError

#: how long a worker waits for rank 0's next message (an idle server sends none)
IDLE_TIMEOUT = timedelta(days=3650)
#: how long one collective of a forward pass may wait for the other ranks
STEP_TIMEOUT = timedelta(minutes=10)


class TensorParallelGroup:
    """One rank's view of the group. Layers hold it from the start; the collectives
    work once ``connect`` has run (after every rank has loaded its shard)."""

    def __init__(self, rank: int, world_size: int, device: torch.device):
        self.rank, self.world_size, self.device = rank, world_size, device
        self._compute: Any = None
        #: whether this group initialised the process's torch.distributed state
        self._owner = False

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    @staticmethod
    def check_free() -> None:
        """Refuse a second tensor-parallel model in a process that holds one."""
        if dist.is_initialized():
            raise ConfigurationError("this process already holds a tensor-parallel model; shut its engine down "
                                     "first (one tensor-parallel model per process)")

    def connect(self, store: dist.Store) -> None:
        self.check_free()
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        dist.init_process_group("gloo", store=dist.PrefixStore("fw-tp", store), rank=self.rank,
                                world_size=self.world_size, timeout=IDLE_TIMEOUT)
        self._owner = True
        self._compute = dist.new_group(backend=self.backend, timeout=STEP_TIMEOUT)

    def destroy(self) -> None:
        if self._owner and dist.is_initialized():
            dist.destroy_process_group()
        self._owner, self._compute = False, None

    # -- compute ---------------------------------------------------------------------

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place; returns it."""
        dist.all_reduce(tensor, group=self._compute)
        return tensor

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor] | None:
        """Every rank's ``tensor`` (all of one shape) on rank 0, in rank order; None elsewhere."""
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)] if self.rank == 0 else None
        dist.gather(tensor, parts, dst=0, group=self._compute)
        return parts

    def broadcast_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``tensor`` into every rank's (same shape and dtype), in place."""
        dist.broadcast(tensor, src=0, group=self._compute)
        return tensor

    # -- control ---------------------------------------------------------------------

    def send(self, message: Any) -> None:
        """Rank 0: hand ``message`` to every worker (pickled; keep tensors on the CPU)."""
        dist.broadcast_object_list([message], src=0)

    def receive(self) -> Any:
        """A worker: the next message rank 0 sends (waits as long as it takes)."""
        box = [None]
        dist.broadcast_object_list(box, src=0)
        return box[0]
