"""Starting a server's engine cores, seeing them ready, stopping them.

Each data parallel rank of this machine is an engine core: a spawned process (``mp``) or
a Ray actor (``ray``), pinned to its share of the CPU cores. They report their start-up
phases and then ``Ready`` over a handshake socket; the launcher answers with where the
clients (API servers) take outputs. A headless node starts its ranks and hands them to
the head node's launcher over TCP (``--data-parallel-address``/``--data-parallel-rpc-port``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import zmq

from fw.config import EngineConfig
from fw.engine.core import messages as m
from fw.engine.core.binding import CoreBinding, plan_bindings
from fw.engine.core.process import CoreSpec, run_engine_core
from fw.errors import ConfigurationError, FwError

logger = logging.getLogger("fw.engine")

#: how long engine cores may take to become ready
STARTUP_TIMEOUT_S = 1800.0


@dataclass
class EngineHandle:
    """One started engine core, as clients address and watch it."""

    rank: int
    input_address: str
    pid: int
    hostname: str
    model_info: Any
    stats: Any
    loras: list = field(default_factory=list)

    @property
    def on_this_host(self) -> bool:
        return self.hostname == socket.gethostname()

    def alive(self) -> bool:
        """Whether its process still runs (checked by pid on its own host; elsewhere the
        client goes by heartbeats)."""
        if not self.on_this_host:
            return True
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False


def _ranks(parallel, headless: bool) -> list[int]:
    """The data parallel ranks this node runs."""
    size = parallel.data_parallel_size
    local = parallel.data_parallel_size_local
    start = parallel.data_parallel_start_rank
    if parallel.data_parallel_rank is not None:  # one rank behind an external load balancer
        return [parallel.data_parallel_rank]
    if headless:
        if start is None or local is None:
            raise ConfigurationError("--headless needs --data-parallel-start-rank and --data-parallel-size-local "
                                     "(the ranks this node runs)")
    start = start or 0
    local = size - start if local is None else local
    if start + local > size:
        raise ConfigurationError(f"ranks {start}..{start + local - 1} of this node exceed --data-parallel-size "
                                 f"{size}")
    return list(range(start, start + local))


class EngineLauncher:
    def __init__(self, config: EngineConfig, *, num_clients: int = 1, headless: bool = False,
                 term_grace: float = 40.0):
        self.config = config
        self.term_grace = term_grace
        self.parallel = config.parallel
        self.headless = headless
        self.ranks = _ranks(self.parallel, headless)
        self.remote = self.parallel.data_parallel_address is not None
        local_only = self.parallel.data_parallel_rank is not None or self.parallel.data_parallel_hybrid_lb
        #: the ranks the head node waits for: every rank, or (an external load balancer in front)
        #: only its own
        self.expected = len(self.ranks) if local_only or headless else self.parallel.data_parallel_size
        self._dir = tempfile.mkdtemp(prefix="fw-")
        self.handshake_address = self._address("handshake", self.parallel.data_parallel_rpc_port)
        self.output_addresses = [self._address(f"client-{i}") for i in range(num_clients)]
        self.processes: dict[int, Any] = {}
        self.actors: dict[int, Any] = {}
        self._ray_started = False
        self.handles: list[EngineHandle] = []

    def _address(self, name: str, port: int | None = None) -> str:
        """A socket of the head node: TCP on --data-parallel-address across machines, else IPC."""
        if self.remote:
            return f"tcp://{self.parallel.data_parallel_address}:{port or _free_port()}"
        return f"ipc://{self._dir}/{name}"

    def _engine_input(self, rank: int) -> str:
        return f"tcp://{_own_address(self.parallel.data_parallel_address)}:0" if self.remote else \
            f"ipc://{self._dir}/engine-{rank}"

    # -- start ---------------------------------------------------------------------------

    def start(self) -> list[EngineHandle]:
        """Start this node's engine cores and (on the head node) wait until every rank is
        ready; the first start-up error is raised here after stopping them all."""
        context = zmq.Context.instance()
        handshake = None
        if not self.headless:
            handshake = context.socket(zmq.ROUTER)
            handshake.bind(self.handshake_address)
        try:
            self._spawn()
            if handshake is not None:
                self.handles = self._await_ready(handshake)
        except BaseException:
            self.stop()
            raise
        finally:
            if handshake is not None:
                handshake.close(linger=1000)
        return self.handles

    def _spawn(self) -> None:
        bindings = plan_bindings(len(self.ranks))
        config = self.config.model_dump()
        level = logging.getLogger().getEffectiveLevel()
        for rank, binding in zip(self.ranks, bindings):
            spec = CoreSpec(rank=rank, config=config, handshake_address=self.handshake_address,
                            input_address=self._engine_input(rank), binding=binding, log_level=level,
                            term_grace=self.term_grace)
            if self.parallel.data_parallel_backend == "ray":
                self._spawn_actor(spec)
            else:
                process = multiprocessing.get_context("spawn").Process(
                    target=run_engine_core, args=(spec,), name=f"fw-engine-core-{rank}")
                process.start()
                self.processes[rank] = process
            logger.info("engine core %d starting (%s, %s)", rank, self.parallel.data_parallel_backend,
                        binding.describe())

    def _spawn_actor(self, spec: CoreSpec) -> None:
        from fw.engine.core.ray_actor import start_actor

        if not self.actors and not self._ray_started:
            self._ray_started = _init_ray(self.parallel.ray_address)
        # Ray places the actor by CPU count; the core binding is Ray's to make there.
        cpus = len(spec.binding.cpus or []) or max(1, (os.cpu_count() or 1) // max(len(self.ranks), 1))
        spec.binding = CoreBinding()
        self.actors[spec.rank] = start_actor(spec, cpus)

    def _await_ready(self, handshake: zmq.Socket) -> list[EngineHandle]:
        ready: dict[int, tuple[bytes, m.Ready]] = {}
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        poller = zmq.Poller()
        poller.register(handshake, zmq.POLLIN)
        while len(ready) < self.expected:
            if time.monotonic() > deadline:
                raise FwError(f"engine cores did not become ready within {STARTUP_TIMEOUT_S:.0f} s")
            if not poller.poll(200):
                self._check_spawned()
                continue
            identity, payload = handshake.recv_multipart()
            message = m.handshake.decode(payload)
            if isinstance(message, m.Phase):
                logger.info("engine core %d: %s", message.engine, message.name)
            elif isinstance(message, m.StartupFailed):
                raise m.error_from(message.error)
            else:
                ready[message.engine] = (identity, message)
                logger.info("engine core %d ready (pid %d on %s)", message.engine, message.pid, message.hostname)
        reply = m.encoder.encode(m.Connect(self.output_addresses))
        handles = []
        for rank in sorted(ready):
            identity, message = ready[rank]
            handshake.send_multipart([identity, reply])
            handles.append(EngineHandle(rank, message.input_address, message.pid, message.hostname,
                                        message.model_info, message.stats, list(message.loras)))
        return handles

    def _check_spawned(self) -> None:
        for rank, process in self.processes.items():
            if process.exitcode is not None:
                raise FwError(f"engine core {rank} exited with code {process.exitcode} while starting; "
                              "see its log lines above")
        if self.actors:
            from fw.engine.core.ray_actor import failure

            for rank, actor in self.actors.items():
                error = failure(actor)
                if error is not None:
                    raise FwError(f"engine core {rank} (Ray actor) failed while starting: {error}")

    def dead_ranks(self) -> list[int]:
        """Ranks of this node whose engine core has stopped."""
        dead = [rank for rank, process in self.processes.items() if process.exitcode is not None]
        if self.actors:
            from fw.engine.core.ray_actor import failure

            dead += [rank for rank, actor in self.actors.items() if failure(actor) is not None]
        return sorted(dead)

    def exit_code(self, rank: int) -> int | None:
        process = self.processes.get(rank)
        return None if process is None else process.exitcode

    # -- stop ----------------------------------------------------------------------------

    def _tell_shutdown(self) -> None:
        _send_shutdown([h.input_address for h in self.handles])

    def stop(self, grace: float = 3.0, timeout: float = 10.0) -> None:
        """Stop every engine core this node started, by its own id, and wait for it: each is
        told to shut down and gets ``grace`` seconds to exit, then SIGTERM, then SIGKILL."""
        self._tell_shutdown()
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
                process.join(5)
        if self.actors:
            from fw.engine.core.ray_actor import stop_actors

            stop_actors(list(self.actors.values()), shutdown_ray=self._ray_started)
            self.actors.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


def _send_shutdown(addresses: list[str]) -> None:
    context = zmq.Context.instance()
    for address in addresses:
        sock = context.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDTIMEO, 500)
        sock.connect(address)
        try:
            sock.send(m.encoder.encode(m.Shutdown()))
        except zmq.ZMQError:
            pass
        sock.close(linger=500)


def _init_ray(address: str | None) -> bool:
    """Join the Ray cluster at ``address`` (or RAY_ADDRESS), else start a local Ray;
    True when this process started it (and so stops it)."""
    try:
        import ray
    except ImportError:
        raise ConfigurationError("--data-parallel-backend ray needs Ray: pip install 'fw[ray]'") from None
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return False
    ray.init(include_dashboard=False, log_to_driver=True, num_cpus=os.cpu_count())
    return True


def _own_address(head: str | None) -> str:
    """This machine's address as the head node reaches it."""
    if head in (None, "127.0.0.1", "localhost"):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((head, 9))
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostbyname(socket.gethostname())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def new_client_id() -> str:
    return uuid.uuid4().hex[:8]
