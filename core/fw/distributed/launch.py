"""The two ways into tensor parallelism: the engine's process as rank 0
(``build_tensor_parallel_model``, from ``fw.engine.model_builder``) and a worker node
(``run_worker_node``, ``fw serve --headless --node-rank K``).

Ranks are numbered node by node: with ``--nnodes M`` each node runs
``tensor_parallel_size / M`` of them, node 0 ranks 0.., node 1 the next ones. Rank 0 lives
in the engine's process; the mp backend spawns the rest of a node's ranks as processes,
the ray backend asks Ray for an actor per rank wherever the cluster has room.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import signal
import threading

import torch

from fw.config import EngineConfig
from fw.distributed import startup
from fw.distributed.executors import Executor, MultiprocExecutor, RayExecutor
from fw.distributed.group import TensorParallelGroup
from fw.distributed.proxy import TensorParallelModel
from fw.distributed.sharding import check_heads
from fw.distributed.worker import RankSpec, load_rank
from fw.engine.model_builder import LoadedModel, model_files
from fw.errors import ConfigurationError

logger = logging.getLogger("fw.distributed")


def build_tensor_parallel_model(config: EngineConfig, device: torch.device) -> LoadedModel:
    """Start the other ranks, load rank 0's shard here and return rank 0's view of the
    model; ``LoadedModel.shutdown`` stops the workers (also at exit)."""
    parallel = config.parallel
    size = parallel.tensor_parallel_size
    TensorParallelGroup.check_free()
    _check_model(config, size)
    backend = parallel.executor_backend
    local_size = size // parallel.nnodes
    threads = _threads_per_rank(local_size)
    store = startup.host_store(parallel.master_port, size)
    executor: Executor
    if backend == "ray":
        executor = RayExecutor(parallel.ray_address, device.type, threads, startup.STARTUP_TIMEOUT)
        address, others = executor.node_address(), range(1, size)
    else:
        executor = MultiprocExecutor()
        address, others = parallel.master_addr, range(1, local_size)
    watch = os.getpid() if backend == "mp" else None  # Ray ends its actors with their driver
    # Ray shows each actor only its own GPU, as device 0
    specs = [RankSpec(rank, size, 0 if backend == "ray" else rank, local_size, address, store.port, config,
                      threads, watch) for rank in others]
    if device.type == "cuda":
        device = torch.device("cuda", 0)
    else:
        torch.set_num_threads(threads)
    group = TensorParallelGroup(0, size, device)
    logger.info("tensor parallelism: %d ranks (%s backend, %s; %d per node over %d node(s)); rank 0 here, "
                "meeting at port %d", size, backend, group.backend, local_size, parallel.nnodes, store.port)
    try:
        executor.start(specs)
        loaded = load_rank(RankSpec(0, size, 0, local_size, address, store.port, config, threads), store, group)
        startup.wait_ready(store, size, executor.check_alive)
        group.connect(store)
    except BaseException:
        executor.shutdown(timeout=0)
        group.destroy()
        raise
    model = TensorParallelModel(loaded.model, group, executor.check_alive)
    return dataclasses.replace(loaded, model=model, shutdown=_shutdown(model, group, executor, store))


def _shutdown(model: TensorParallelModel, group: TensorParallelGroup, executor: Executor, store):
    """Stop the workers once (the engine's shutdown, else at exit)."""
    lock = threading.Lock()
    done = False

    def shutdown() -> None:
        nonlocal done, store
        with lock:
            if done:
                return
            done = True
        atexit.unregister(shutdown)
        told = model.stop_workers()
        executor.shutdown(timeout=10.0 if told else 0.0)
        group.destroy()
        store = None  # the store's server stops with the last reference

    atexit.register(shutdown)
    return shutdown


def _check_model(config: EngineConfig, size: int) -> None:
    """Refuse a model whose heads do not split, before any process starts (each rank
    checks its model again while cutting it)."""
    _, _, hf_config = model_files(config)
    heads = getattr(hf_config, "num_attention_heads", None)
    if heads:
        check_heads(heads, getattr(hf_config, "num_key_value_heads", None) or heads, size)
    own = vars(hf_config)  # what the config holds (a GGUF file's config asks transformers for the rest)
    experts = own.get("num_local_experts") or own.get("num_experts")
    if experts:
        raise ConfigurationError(f"the model's mixture-of-experts layers ({experts} experts) are not split by "
                                 f"tensor parallelism; serve it with --tensor-parallel-size 1")


def _threads_per_rank(local_size: int) -> int:
    """An even share of this machine's usable cores for each of its ranks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // local_size)


def run_worker_node(config: EngineConfig) -> int:
    """``fw serve --headless --nnodes M --node-rank K``: run this node's ranks until rank 0
    (on node 0) stops them; the exit code is 0 when every rank ended cleanly."""
    parallel = config.parallel
    size, nodes, node = parallel.tensor_parallel_size, parallel.nnodes, parallel.node_rank
    if node == 0:
        raise ConfigurationError("--headless runs worker nodes (--node-rank 1 and up); node 0 runs the engine")
    _check_model(config, size)
    local_size = size // nodes
    threads = _threads_per_rank(local_size)
    specs = [RankSpec(node * local_size + i, size, i, local_size, parallel.master_addr, parallel.master_port,
                      config, threads, os.getpid()) for i in range(local_size)]
    executor = MultiprocExecutor()
    logger.info("worker node %d of %d: tensor-parallel ranks %d-%d, joining %s:%d", node, nodes, specs[0].rank,
                specs[-1].rank, parallel.master_addr, parallel.master_port)

    def stop(signum, frame) -> None:
        logger.info("signal %d: stopping this node's ranks", signum)
        executor.shutdown(timeout=5)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        executor.start(specs)
        codes = executor.wait()
    finally:
        executor.shutdown(timeout=5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = {spec.rank: code for spec, code in zip(specs, codes) if code != 0}
    if failed:
        logger.error("tensor-parallel ranks ended with errors: %s", failed)
        return 1
    logger.info("rank 0 stopped this node's ranks; exiting")
    return 0
