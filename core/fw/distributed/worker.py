"""A tensor-parallel rank: how each rank loads its shard, and the loop of ranks 1..N-1.

A worker mirrors rank 0: each message rank 0 sends (``fw.distributed.messages``) is one
call rank 0's engine makes on its model, and the worker makes the same call on its shard,
so every collective inside meets its partners. It keeps a KV cache of rank 0's block
count (its own KV heads) and, with LoRA, the adapters rank 0 holds in each slot, cut to
its shard. It samples nothing: rank 0 alone holds the whole logits.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
import time
from dataclasses import dataclass

import torch

from fw.attention.context import forward_context
from fw.attention.kv_format import KVCacheFormat
from fw.config import EngineConfig
from fw.distributed import startup
from fw.distributed.group import TensorParallelGroup
from fw.distributed.messages import ForwardStep, LogitsStep, Stop
from fw.distributed.transform import shard_model
from fw.engine.kv_sizing import KVPlan, allocate_kv_caches, attention_layers
from fw.engine.model_builder import LoadedModel, load_model, resolve_device
from fw.engine.prefault import Prefaulter
from fw.layers.lora import LoRABatch

logger = logging.getLogger("fw.distributed")


@dataclass
class RankSpec:
    """What a rank needs to start (picklable: it crosses into a process or a Ray actor)."""

    rank: int
    world_size: int
    #: index among this machine's ranks (its CUDA device) and how many ranks the machine runs
    local_rank: int
    local_size: int
    master_addr: str
    master_port: int
    config: EngineConfig
    #: torch threads of this rank on a CPU
    threads: int
    #: exit when this process (the one that started the worker) is gone
    parent_pid: int | None = None


def rank_device(local_rank: int) -> torch.device:
    device = resolve_device()
    return torch.device("cuda", local_rank) if device.type == "cuda" else device


def load_rank(spec: RankSpec, store, group: TensorParallelGroup) -> LoadedModel:
    """Load the whole model on this rank, in its turn, and cut this rank's shard."""
    wave = spec.config.parallel.max_parallel_loading_workers
    startup.wait_for_turn(store, spec.rank, wave)
    try:
        return load_model(spec.config, group.device, shard=lambda model: shard_model(model, group))
    finally:
        startup.finished_loading(store, spec.rank)


def run_worker(spec: RankSpec) -> None:
    """Ranks 1..N-1: load, report, serve rank 0's calls until it says stop."""
    _name_process(spec.rank)
    if spec.parent_pid is not None:
        _exit_with_parent(spec.parent_pid)
    device = rank_device(spec.local_rank)
    if device.type == "cpu":
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.config.model.seed)
    store = startup.join_store(spec.master_addr, spec.master_port)
    group = TensorParallelGroup(spec.rank, spec.world_size, device)
    try:
        loaded = load_rank(spec, store, group)
    except BaseException as exc:
        startup.report(store, spec.rank, f"{type(exc).__name__}: {exc}")
        raise
    startup.report(store, spec.rank, None)
    group.connect(store)
    try:
        Worker(loaded, group, spec.config).run()
    finally:
        group.destroy()


class RankZeroGone(Exception):
    """The engine's process (rank 0) ended without telling this rank to stop."""


class Worker:
    def __init__(self, loaded: LoadedModel, group: TensorParallelGroup, config: EngineConfig):
        self.model, self.group, self.loaded = loaded.model, group, loaded
        self.kv_blocks: tuple[int, int] | None = None
        #: faults this rank's fresh KV cache in (none yet: an idle one until rank 0 sizes it)
        self.prefault = Prefaulter([])
        self.kv_format = KVCacheFormat.resolve(config.cache.kv_cache_dtype, config.cache.calculate_kv_scales,
                                               loaded.dtype)
        self.lora = None
        if config.lora.enable_lora:
            from fw.lora.manager import LoRAManager

            self.lora = LoRAManager(config.lora, loaded.model, loaded.dtype, group.device)

    @torch.inference_mode()
    def run(self) -> None:
        while True:
            try:
                message = self.group.receive()
            except RuntimeError as exc:  # gloo/NCCL: the connection to rank 0 closed
                raise RankZeroGone(f"rank 0 went away without stopping this rank ({exc})") from None
            if isinstance(message, Stop):
                return
            if isinstance(message, ForwardStep):
                self._forward(message)
            elif isinstance(message, LogitsStep):
                hidden = torch.empty(message.shape, dtype=message.dtype, device=self.group.device)
                self.model.compute_logits(self.group.broadcast_tensor(hidden))
            else:
                raise RuntimeError(f"tensor-parallel rank {self.group.rank} got an unknown message {message!r}")

    def _forward(self, step: ForwardStep) -> None:
        input_ids, positions, metadata, lora = step.to(self.group.device)
        if step.kv_blocks != self.kv_blocks:
            self._allocate_kv(*step.kv_blocks)
        if self.lora is not None:
            if lora is not None:
                self.lora.mirror(lora.slot_adapters)
            self.lora.step.batch = lora or LoRABatch()
        with forward_context(metadata):
            self.model(input_ids, positions)

    def _allocate_kv(self, num_blocks: int, block_size: int) -> None:
        """A KV cache of rank 0's block count, for this rank's KV heads."""
        layers = attention_layers(self.model)
        self.prefault.stop()
        for layer in layers:
            layer.kv_cache = None
        caches = allocate_kv_caches(self.model, KVPlan(num_blocks, block_size, 0, self.kv_format), self.loaded.dtype,
                                    self.group.device)
        for layer, cache in zip(layers, caches):
            layer.kv_cache = cache
        self.kv_blocks = (num_blocks, block_size)
        self.prefault = Prefaulter(caches).start()


def _name_process(rank: int) -> None:
    try:
        import setproctitle
    except ImportError:
        return
    setproctitle.setproctitle(f"fw::tp_rank{rank}")


def _exit_with_parent(parent_pid: int) -> None:
    """End this worker when the process that started it is gone (killed, say), so no
    worker outlives its engine."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        logger.error("the process that started this tensor-parallel worker is gone; exiting")
        os._exit(1)

    threading.Thread(target=watch, name="fw-parent-watch", daemon=True).start()


def main() -> None:
    """``python -m fw.distributed.worker``: one rank, its ``RankSpec`` pickled on stdin
    (the mp backend); an error ends the process with code 1."""
    spec: RankSpec = pickle.load(sys.stdin.buffer)
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s (tp rank {spec.rank}) %(levelname)s %(name)s: %(message)s")
    try:
        run_worker(spec)
    except RankZeroGone as exc:
        logger.error("%s", exc)
        raise SystemExit(1) from None
    except BaseException:  # logged here; rank 0 learns of it through the store
        logger.exception("tensor-parallel rank %d failed", spec.rank)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
