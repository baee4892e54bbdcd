"""The engine core's busy loop: ``LLMEngine`` behind ZeroMQ sockets.

Three threads share the work so that each step overlaps the rest: one receives and
decodes client messages, the main thread admits them and steps the engine, one encodes
and sends outputs. fw's kernels release the GIL (ctypes calls), so decoding and encoding
run while a step computes. The process around it is ``fw.engine.core.process``.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

import zmq

from fw.engine.core import messages as m
from fw.engine.outputs import PoolingRequestOutput
from fw.engine.sleep import Sleep
from fw.lora.request import LoRARequest

if TYPE_CHECKING:
    from fw.engine.core.process import CoreSpec

logger = logging.getLogger("fw.engine")

#: a silent engine core still sends its stats this often (heartbeat and /metrics)
HEARTBEAT_S = 0.5


class EngineCore:
    """One engine core's loop: admits what clients send, steps the engine, publishes each
    step's outputs to the client each request came from, and answers utility calls."""

    def __init__(self, engine, rank: int, context: zmq.Context, input_socket: zmq.Socket,
                 output_addresses: list[str], rebuild: Callable[[], Any],
                 must_stop: Callable[[], str | None]):
        """``rebuild``: a new engine (waking from a level-2 sleep); ``must_stop``: why the
        process must stop now, or None (see ``fw.engine.core.process``)."""
        self.engine = engine
        self.rank = rank
        self.input_socket = input_socket
        self.outputs_to: list[zmq.Socket] = []
        for address in output_addresses:
            out = context.socket(zmq.PUSH)
            out.connect(address)
            self.outputs_to.append(out)
        self.inbox: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        #: request id -> the client it came from
        self.client_of: dict[str, int] = {}
        #: requests whose prompt went out with their first output (later ones leave it out)
        self.prompt_sent: set[str] = set()
        #: requests waiting for their grammar to compile off the loop
        self.compiling: list[tuple[Future, m.AddRequest, float]] = []
        self.compiler = ThreadPoolExecutor(1, thread_name_prefix="fw-grammar")
        self.stopping = False
        self.must_stop = must_stop
        #: sleep mode (fw.engine.sleep); a sleep's waiter is the client's Utility call
        self.sleep = Sleep(rebuild)
        #: the stats while asleep at level 2 (no engine to ask)
        self._asleep_stats = None

    @classmethod
    def start(cls, spec: "CoreSpec", context: zmq.Context, handshake: zmq.Socket,
              must_stop: Callable[[], str | None]) -> "EngineCore":
        """Build the engine, report ready, and wait for where to send outputs; gives up
        (SystemExit) when ``must_stop`` says why (the launcher died meanwhile)."""
        from fw.config import EngineConfig
        from fw.engine.llm_engine import LLMEngine

        def phase(name: str) -> None:
            handshake.send(m.encoder.encode(m.Phase(spec.rank, name)))

        config = EngineConfig.model_validate(spec.config)
        engine = LLMEngine.from_config(config, on_phase=phase)
        input_socket = context.socket(zmq.PULL)
        input_socket.bind(spec.input_address)
        address = input_socket.getsockopt_string(zmq.LAST_ENDPOINT)
        handshake.send(m.encoder.encode(m.Ready(
            engine=spec.rank, input_address=address, pid=os.getpid(), hostname=socket.gethostname(),
            model_info=engine.model_info(), stats=engine.stats(), loras=engine.list_loras())))
        while not handshake.poll(500):
            reason = must_stop()
            if reason is not None:
                logger.warning("engine core %d stops before serving: %s", spec.rank, reason)
                input_socket.close(linger=0)
                raise SystemExit(0)
        reply = m.connect.decode(handshake.recv())
        return cls(engine, spec.rank, context, input_socket, reply.output_addresses,
                   rebuild=lambda: LLMEngine.from_config(config), must_stop=must_stop)

    # -- threads -------------------------------------------------------------------------

    def _receive(self) -> None:
        """The input thread (it owns the input socket)."""
        poller = zmq.Poller()
        poller.register(self.input_socket, zmq.POLLIN)
        while not self.stopping:
            if poller.poll(100):
                self.inbox.put(m.to_engine.decode(self.input_socket.recv(copy=False).buffer))
        self.input_socket.close(linger=0)

    def _send(self) -> None:
        """The output thread (it owns the output sockets)."""
        while True:
            item = self.outbox.get()
            if item is None:
                break
            client, message = item
            self.outputs_to[client].send(m.encoder.encode(message), copy=False)
        for out in self.outputs_to:
            out.close(linger=1000)

    # -- the loop --------------------------------------------------------------------------

    def serve(self) -> None:
        self.threads = [threading.Thread(target=self._receive, name="fw-core-in", daemon=True),
                        threading.Thread(target=self._send, name="fw-core-out", daemon=True)]
        for thread in self.threads:
            thread.start()
        last_heartbeat = 0.0
        while not self.stopping:
            busy = self.engine is not None and self.engine.has_unfinished_requests() or self.compiling
            self._take_messages(block=not busy)
            self._admit_compiled()
            if self.engine is not None and self.engine.has_unfinished_requests():
                self._publish(self.engine.step())
            elif self.sleep.pending is not None and not self.compiling:
                self._fall_asleep()
            if time.monotonic() - last_heartbeat > HEARTBEAT_S:
                self._heartbeat()
                last_heartbeat = time.monotonic()
                reason = self.must_stop()
                if reason is not None:
                    logger.warning("engine core %d stops: %s", self.rank, reason)
                    return

    def _take_messages(self, block: bool) -> None:
        try:
            message = self.inbox.get(timeout=HEARTBEAT_S) if block else self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            self._handle(message)
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, message) -> None:
        if isinstance(message, (m.AddRequest, m.AddPoolingRequest)):
            self._add(message)
        elif isinstance(message, m.Abort):
            self._abort(message.request_ids)
        elif isinstance(message, m.Utility):
            self._utility(message)
        elif isinstance(message, m.Shutdown):
            self.stopping = True

    def _add(self, message: m.AddRequest | m.AddPoolingRequest) -> None:
        from fw.engine.admission import check_room

        try:
            check_room(self.engine, self.sleep.sleeping)
        except Exception as exc:  # noqa: BLE001 - the client gets it
            self._refuse(message, exc)
            return
        constraint = getattr(message.params, "structured_outputs", None)
        if constraint is not None:
            timeout = self.engine.config.structured_outputs.guided_decoding_compile_timeout
            future = self.compiler.submit(self.engine.structured.compile, constraint)
            self.compiling.append((future, message, time.monotonic() + timeout))
            return
        self._add_now(message)

    def _admit_compiled(self) -> None:
        """Admit requests whose grammar compiled (the engine then finds it in its cache)."""
        if not self.compiling:
            return
        from fw.errors import InvalidParameterError

        waiting = []
        for future, message, deadline in self.compiling:
            if future.done():
                error = future.exception()
                if error is not None:
                    self._refuse(message, error)
                else:
                    self._add_now(message)
            elif time.monotonic() > deadline:
                constraint = message.params.structured_outputs
                timeout = self.engine.config.structured_outputs.guided_decoding_compile_timeout
                self._refuse(message, InvalidParameterError(
                    constraint.param_name(), f"the grammar did not compile within {timeout:g} s "
                                             "(--guided-decoding-compile-timeout); simplify it"))
            else:
                waiting.append((future, message, deadline))
        self.compiling = waiting

    def _add_now(self, message: m.AddRequest | m.AddPoolingRequest) -> None:
        prompt: dict[str, Any] = {}
        if message.prompt_token_ids is not None:
            prompt["prompt_token_ids"] = message.prompt_token_ids
        if message.prompt is not None:
            prompt["prompt"] = message.prompt
        if isinstance(message, m.AddPoolingRequest):
            extras: dict[str, Any] = {}
            if message.token_type_ids is not None:
                prompt["token_type_ids"] = message.token_type_ids
        else:
            extras = dict(lora_request=message.lora_request, keep_special_ids=frozenset(message.keep_special_ids),
                          reasoning_end_ids=tuple(message.reasoning_end_ids) if message.reasoning_end_ids else None)
        try:
            self.engine.add_request(message.request_id, prompt, message.params, arrival_time=message.arrival_time,
                                    priority=message.priority, **extras)
        except Exception as exc:  # noqa: BLE001 - every refusal goes back to the client
            self._refuse(message, exc)
            return
        self.client_of[message.request_id] = message.client

    def _refuse(self, message: m.AddRequest | m.AddPoolingRequest, error: BaseException) -> None:
        self.outbox.put((message.client, m.Outputs(self.rank, errors={message.request_id: m.error_info(error)},
                                                   stats=self._stats())))

    def _stats(self):
        return self.engine.stats() if self.engine is not None else self._asleep_stats

    def _abort(self, request_ids: list[str]) -> None:
        self.compiling = [(f, msg, d) for f, msg, d in self.compiling if msg.request_id not in request_ids]
        if self.engine is not None:
            self._publish(self.engine.abort_request(request_ids))

    def _utility(self, message: m.Utility) -> None:
        """An engine method a client called (LoRA registry, sleep mode)."""
        if message.method == "sleep":
            self._sleep(message)  # answered once asleep
            return
        result = m.UtilityResult(message.call_id, self.rank)
        try:
            if message.method == "wake_up":
                self.engine = self.sleep.wake_up(self.engine)
            elif message.method not in ("add_lora", "remove_lora", "list_loras"):
                raise ValueError(f"unknown engine method {message.method!r}")
            elif self.engine is None:
                raise ValueError(f"{message.method} while asleep at level 2; POST /wake_up first")
            else:
                args = message.args
                if message.method == "add_lora":
                    args = [LoRARequest(**args[0])]
                result.result = getattr(self.engine, message.method)(*args)
        except Exception as exc:  # noqa: BLE001 - the caller gets it
            result.error = m.error_info(exc)
        self.outbox.put((message.client, result))

    # -- sleep mode ------------------------------------------------------------------------

    def _sleep(self, message: m.Utility) -> None:
        """Sleep once the running requests have finished (answered then)."""
        if not self.sleep.request(int(message.args[0]) if message.args else 1, message):
            self.outbox.put((message.client, m.UtilityResult(message.call_id, self.rank)))

    def _fall_asleep(self) -> None:
        message = self.sleep.pending[1]
        result = m.UtilityResult(message.call_id, self.rank)
        try:
            self._asleep_stats = self.engine.stats()
            self.engine = self.sleep.fall_asleep(self.engine)
        except Exception as exc:  # noqa: BLE001 - the caller gets it
            result.error = m.error_info(exc)
        self.outbox.put((message.client, result))

    def _publish(self, outputs) -> None:
        """Send a step's outputs to the clients they belong to, with the engine's stats."""
        stats = self._stats()
        per_client: dict[int, m.Outputs] = {}
        for output in outputs:
            client = self.client_of.get(output.request_id)
            if client is None:
                continue
            batch = per_client.get(client)
            if batch is None:
                batch = per_client[client] = m.Outputs(self.rank, outputs=[], errors={}, stats=stats, pooled=[])
            if output.error is not None:
                batch.errors[output.request_id] = m.error_info(output.error)
                output.error = None
            if isinstance(output, PoolingRequestOutput):
                batch.pooled.append(m.Pooled.of(output))
                del self.client_of[output.request_id]
                continue
            if output.request_id in self.prompt_sent:  # the client keeps it from the first output
                output.prompt, output.prompt_token_ids = None, []
            else:
                self.prompt_sent.add(output.request_id)
            batch.outputs.append(output)
            if output.finished:
                del self.client_of[output.request_id]
                self.prompt_sent.discard(output.request_id)
        for client, batch in per_client.items():
            self.outbox.put((client, batch))

    def _heartbeat(self) -> None:
        stats = self._stats()
        for client in range(len(self.outputs_to)):
            self.outbox.put((client, m.Outputs(self.rank, stats=stats)))

    def close(self) -> None:
        """Stop the threads (each closes its sockets) and end what is still running."""
        self.stopping = True
        self._abort(list(self.client_of))
        self.outbox.put(None)
        for thread in getattr(self, "threads", ()):
            thread.join(5)
        self.compiler.shutdown(wait=False, cancel_futures=True)
        if self.engine is not None:
            self.engine.shutdown()  # its tensor-parallel ranks, on the thread that ran the steps
