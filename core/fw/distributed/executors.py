"""Where the ranks other than rank 0 run: processes on this machine (``mp``) or Ray
actors (``ray``). Each executor starts them, reports one that died while starting, and
stops every one of them by its own id (a process, an actor); none outlives it.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import time
from abc import ABC, abstractmethod

from fw.distributed.worker import RankSpec
from fw.errors import ConfigurationError, FwError

logger = logging.getLogger("fw.distributed")


class Executor(ABC):
    @abstractmethod
    def start(self, specs: list[RankSpec]) -> None:
        """Start one worker per spec."""

    @abstractmethod
    def check_alive(self) -> None:
        """Raise ``FwError`` naming a worker that has ended."""

    @abstractmethod
    def pids(self) -> list[int]:
        """The workers' process ids (on their machines)."""

    @abstractmethod
    def shutdown(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` for the workers to leave, then end those still there."""


class MultiprocExecutor(Executor):
    """Processes on this machine (``mp``): a fresh interpreter per rank
    (``python -m fw.distributed.worker``, its ``RankSpec`` pickled on stdin). A fresh
    interpreter is what CUDA needs, and unlike multiprocessing's spawn it neither re-runs
    the caller's main module nor minds being started from a daemon process."""

    def __init__(self) -> None:
        self.processes: dict[int, subprocess.Popen] = {}

    def start(self, specs: list[RankSpec]) -> None:
        for spec in specs:
            process = subprocess.Popen([sys.executable, "-m", "fw.distributed.worker"], stdin=subprocess.PIPE)
            self.processes[spec.rank] = process
            try:
                process.stdin.write(pickle.dumps(spec))
                process.stdin.close()
            except BrokenPipeError:
                pass  # it died at once; check_alive reports it
        if self.processes:
            logger.info("tensor-parallel ranks %s started as processes %s", list(self.processes), self.pids())

    def check_alive(self) -> None:
        for rank, process in self.processes.items():
            if process.poll() is not None:
                raise FwError(f"tensor-parallel rank {rank} (process {process.pid}) exited with code "
                              f"{process.returncode}")

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes.values()]

    def wait(self) -> list[int]:
        """Block until every worker has ended; their exit codes."""
        return [process.wait() for process in self.processes.values()]

    def shutdown(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():
            if process.poll() is None:
                logger.warning("tensor-parallel worker %d did not stop; terminating it", process.pid)
                process.terminate()
                try:
                    process.wait(3)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(3)


class RankActor:
    """A Ray actor running one rank (``run`` returns when rank 0 says stop)."""

    def pid(self) -> int:
        return os.getpid()

    def run(self, spec: RankSpec) -> None:
        from fw.distributed.worker import run_worker

        run_worker(spec)


class RayExecutor(Executor):
    """Ray actors, placed by Ray's resources (a GPU each on CUDA, CPUs on a CPU). Joins
    ``--ray-address`` / RAY_ADDRESS when set, else starts Ray on this machine (and stops
    it again at shutdown)."""

    def __init__(self, address: str | None, device_type: str, cpus_per_rank: int, timeout: float):
        self.address, self.device_type, self.cpus = address, device_type, cpus_per_rank
        self.timeout = timeout
        self.started_ray = False
        self.actors: list = []
        self.runs: list = []
        self.ranks: list[int] = []
        self._pids: list[int] = []

    def node_address(self) -> str:
        """This machine's address in the Ray cluster (where rank 0's store listens)."""
        self._init()
        import ray

        return ray.util.get_node_ip_address()

    def _init(self) -> None:
        import ray

        if ray.is_initialized():
            return
        options: dict = {"logging_level": logging.WARNING}
        if self.address:
            options["address"] = self.address
        else:
            options["include_dashboard"] = False
        if os.environ.get("PYTHONPATH"):  # a source checkout: the actors import the same files
            paths = [os.path.abspath(p) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p]
            options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
        ray.init(**options)
        self.started_ray = True

    def start(self, specs: list[RankSpec]) -> None:
        import ray

        self._init()
        resources = {"num_gpus": 1, "num_cpus": 0} if self.device_type == "cuda" else {"num_cpus": self.cpus}
        actor_class = ray.remote(**resources)(RankActor)
        self.ranks = [spec.rank for spec in specs]
        self.actors = [actor_class.remote() for _ in specs]
        try:
            self._pids = ray.get([actor.pid.remote() for actor in self.actors], timeout=self.timeout)
        except ray.exceptions.GetTimeoutError:
            raise ConfigurationError(
                f"Ray placed no actor for {len(specs)} tensor-parallel ranks within {self.timeout:.0f} s; the "
                f"cluster has {ray.cluster_resources()} and each rank needs {resources}") from None
        self.runs = [actor.run.remote(spec) for actor, spec in zip(self.actors, specs)]
        logger.info("tensor-parallel ranks %s started as Ray actors (processes %s)", self.ranks, self._pids)

    def check_alive(self) -> None:
        import ray

        done, _ = ray.wait(self.runs, num_returns=len(self.runs), timeout=0)
        for ref in done:
            rank = self.ranks[self.runs.index(ref)]
            try:
                ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise FwError(f"tensor-parallel rank {rank} (Ray actor) failed: {exc}") from None
            raise FwError(f"tensor-parallel rank {rank} (Ray actor) has ended")

    def pids(self) -> list[int]:
        return list(self._pids)

    def shutdown(self, timeout: float = 10.0) -> None:
        import ray

        if not ray.is_initialized():
            return
        if self.runs:
            ray.wait(self.runs, num_returns=len(self.runs), timeout=timeout)
        for actor in self.actors:
            ray.kill(actor)
        self.actors, self.runs = [], []
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False
