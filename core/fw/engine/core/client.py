"""EngineCoreClient: the API server's view of its engine core processes.

It is an ``EngineClient``, so the server cannot tell it from the in-thread engine. Requests
go to the engine core the load balancer picks (``fw.engine.core.balancer``); each engine's
outputs arrive on this client's one output socket and are handed to the request streams
they belong to. A watcher notices an engine core that died: its in-flight requests end
with ``EngineDeadError``, new requests go to the others, and when none is left the
server is told (``on_dead``) so it can exit for a supervisor to restart it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import zmq
import zmq.asyncio

from fw.engine.core import balancer
from fw.engine.core import messages as m
from fw.engine.admission import ASLEEP
from fw.engine.core.launcher import EngineHandle
from fw.engine.outputs import PoolingRequestOutput, RequestOutput
from fw.engine.protocol import EngineClient, EngineStats, ModelInfo, PromptInput
from fw.engine.sampling_params import SamplingParams
from fw.errors import EngineDeadError, InvalidParameterError, NotSupportedError, OverloadedError
from fw.lora.request import LoRARequest
from fw.pooling.params import PoolingParams

logger = logging.getLogger("fw.engine")

#: an engine core on another machine is dead after this long without a message (it sends
#: one between steps, so this bounds the longest step it may take, a long prefill included)
HEARTBEAT_TIMEOUT_S = 60.0
WATCH_INTERVAL_S = 0.25


@dataclass(eq=False)
class _Stream:
    engine: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    prompt: str | None = None
    prompt_token_ids: list[int] | None = None


@dataclass(eq=False)
class _Engine:
    handle: EngineHandle
    load: balancer.EngineLoad
    socket: Any = None
    alive: bool = True
    last_heard: float = field(default_factory=time.monotonic)

    def seems_dead(self, now: float) -> bool:
        """On this host by its process alone: a step that runs long (a large prefill on a
        loaded machine) or an API server whose event loop was starved is not a death.
        Elsewhere, where no pid can be checked, by its silence."""
        if not self.handle.on_this_host:
            return now - self.last_heard > HEARTBEAT_TIMEOUT_S
        return not self.handle.alive()


class EngineCoreClient(EngineClient):
    def __init__(self, handles: list[EngineHandle], output_address: str, client_index: int, tokenizer: Any, *,
                 prefix_aware: bool = True, sleep_enabled: bool = False):
        if not handles:
            raise ValueError("no engine core to talk to")
        first = handles[0]
        self.model_info: ModelInfo = first.model_info
        self.tokenizer = tokenizer
        self.client_index = client_index
        self.output_address = output_address
        self.prefix_aware = prefix_aware
        self.engines = {h.rank: _Engine(h, balancer.EngineLoad(h.rank, h.stats)) for h in handles}
        self._loras: list[LoRARequest] = list(first.loras)
        self._streams: dict[str, _Stream] = {}
        self._calls: dict[int, tuple[asyncio.Future, dict[int, m.UtilityResult], int]] = {}
        self._call_ids = itertools.count()
        self._dead: EngineDeadError | None = None
        self._on_dead: list[Callable[[EngineDeadError], None]] = []
        self._tasks: list[asyncio.Task] = []
        self._context: zmq.asyncio.Context | None = None
        self._output_socket = None
        #: the launcher of the engine cores, when this client started them (and so stops them)
        self.launcher = None
        self.sleep_enabled = sleep_enabled
        self._sleeping = False

    # -- the event-loop side ----------------------------------------------------------------

    def _started(self) -> None:
        """Open the sockets and start the receiver and the watcher in the running loop."""
        if self._context is not None:
            return
        self._context = zmq.asyncio.Context()
        # A plain socket read when the loop sees its descriptor ready: a future per message
        # (zmq.asyncio's recv) cost ~15 % of this process's CPU per streamed token.
        self._output_socket = self._context.socket(zmq.PULL, socket_class=zmq.Socket)
        self._output_socket.bind(self.output_address)
        for engine in self.engines.values():
            engine.socket = self._context.socket(zmq.PUSH)
            engine.socket.connect(engine.handle.input_address)
        asyncio.get_running_loop().add_reader(self._output_socket.FD, self._receive_ready)
        self._receive_ready()  # anything that arrived before the loop watched the descriptor
        self._tasks = [asyncio.create_task(self._watch_forever())]

    async def start(self) -> None:
        """Bind this client's output socket now (engines wait to send until it exists)."""
        self._started()

    def _receive_ready(self) -> None:
        """Handle every message waiting on the output socket. Its descriptor signals edges
        (a change of state), not levels, so the socket is drained until it says it is empty."""
        socket = self._output_socket
        while socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                frame = socket.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                self._receive(frame)
            except Exception:  # one bad message must not stop the others' delivery
                logger.exception("could not handle a message from an engine core")

    def _receive(self, frame) -> None:
        message = m.from_engine.decode(frame.buffer)
        engine = self.engines.get(message.engine)
        if engine is not None:
            engine.last_heard = time.monotonic()
        if isinstance(message, m.Outputs):
            self._deliver(message, engine)
        else:
            self._answer(message)

    def _deliver(self, message: m.Outputs, engine: _Engine | None) -> None:
        if engine is not None and message.stats is not None:
            engine.load.update(message.stats)
        for output in message.outputs:
            stream = self._streams.get(output.request_id)
            if stream is None:
                continue
            if stream.prompt_token_ids is None:
                stream.prompt, stream.prompt_token_ids = output.prompt, output.prompt_token_ids
            else:  # later outputs leave the prompt out; the first one brought it
                output.prompt, output.prompt_token_ids = stream.prompt, stream.prompt_token_ids
            error = message.errors.get(output.request_id)
            stream.queue.put_nowait(output if error is None else m.error_from(error))
            if output.finished:
                self._streams.pop(output.request_id, None)
        for pooled in message.pooled:
            stream = self._streams.pop(pooled.request_id, None)
            if stream is not None:
                error = message.errors.get(pooled.request_id)
                stream.queue.put_nowait(pooled.output() if error is None else m.error_from(error))
        for request_id, error in message.errors.items():
            stream = self._streams.get(request_id)
            if stream is not None and not any(o.request_id == request_id for o in message.outputs):
                stream.queue.put_nowait(m.error_from(error))
                self._streams.pop(request_id, None)

    def _answer(self, result: m.UtilityResult) -> None:
        pending = self._calls.get(result.call_id)
        if pending is None:
            return
        future, results, expected = pending
        results[result.engine] = result
        if len(results) == expected and not future.done():
            future.set_result(results)
            del self._calls[result.call_id]

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            now = time.monotonic()
            for engine in self.engines.values():
                if engine.alive and engine.seems_dead(now):
                    self._engine_died(engine)

    def _engine_died(self, engine: _Engine) -> None:
        engine.alive = False
        rank = engine.handle.rank
        alive = [e for e in self.engines.values() if e.alive]
        lost = [rid for rid, stream in self._streams.items() if stream.engine == rank]
        error = EngineDeadError(f"engine core {rank} (pid {engine.handle.pid}) died; the request was lost")
        for request_id in lost:
            self._streams.pop(request_id).queue.put_nowait(error)
        for future, results, _ in list(self._calls.values()):
            if not future.done() and all(e.alive or e.handle.rank in results for e in self.engines.values()):
                future.set_exception(EngineDeadError(f"engine core {rank} died during the call"))
        if alive:
            logger.error("engine core %d (pid %d) died; %d in-flight request(s) failed; serving on %d remaining "
                         "engine core(s) (ranks %s)", rank, engine.handle.pid, len(lost), len(alive),
                         ", ".join(str(e.handle.rank) for e in alive))
            return
        logger.error("engine core %d (pid %d) died and no engine core is left; the server stops", rank,
                     engine.handle.pid)
        self._dead = EngineDeadError(f"every engine core has stopped (the last, rank {rank}, died)")
        for callback in self._on_dead:
            callback(self._dead)

    # -- EngineClient ----------------------------------------------------------------------

    async def generate(self, prompt: PromptInput, params: SamplingParams, request_id: str, *,
                       priority: int = 0, lora_request: Any = None,
                       keep_special_ids: frozenset[int] = frozenset(),
                       reasoning_end_ids: tuple[int, ...] | None = None) -> AsyncIterator[RequestOutput]:
        self._check_accepting(request_id)
        prompt_ids, text = _split_prompt(prompt)
        engine = self._pick(prompt_ids)
        message = m.AddRequest(
            request_id=request_id, client=self.client_index, prompt_token_ids=prompt_ids, prompt=text,
            params=params, arrival_time=time.monotonic(), priority=priority, lora_request=lora_request,
            keep_special_ids=sorted(keep_special_ids),
            reasoning_end_ids=list(reasoning_end_ids) if reasoning_end_ids else None)
        async for output in self._stream(engine, message):
            yield output

    async def encode(self, prompt: PromptInput, params: PoolingParams, request_id: str, *,
                     priority: int = 0) -> AsyncIterator[PoolingRequestOutput]:
        self._check_accepting(request_id)
        prompt_ids, text = _split_prompt(prompt)
        types = prompt.get("token_type_ids") if isinstance(prompt, dict) else None
        engine = self._pick(prompt_ids)
        message = m.AddPoolingRequest(
            request_id=request_id, client=self.client_index, prompt_token_ids=prompt_ids, prompt=text,
            params=params, arrival_time=time.monotonic(), priority=priority,
            token_type_ids=list(types) if types is not None else None)
        async for output in self._stream(engine, message):
            yield output

    def _check_accepting(self, request_id: str) -> None:
        self._started()
        self.check_health()
        if self._sleeping:
            raise OverloadedError(ASLEEP)
        if request_id in self._streams:
            raise InvalidParameterError("request_id", f"request {request_id!r} is already running")

    async def _stream(self, engine: _Engine, message: m.AddRequest | m.AddPoolingRequest) -> AsyncIterator[Any]:
        """Send a request to ``engine`` and stream its outputs; one left unfinished by its
        caller is aborted."""
        request_id = message.request_id
        stream = _Stream(engine.handle.rank)
        self._streams[request_id] = stream
        finished = False
        try:
            # inside the try: a caller cancelled while sending still aborts what was sent
            await engine.socket.send(m.encoder.encode(message), copy=False)
            while True:
                item = await stream.queue.get()
                if isinstance(item, BaseException):
                    finished = True  # the engine ended it (refused, failed, died)
                    raise item
                finished = item.finished
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self._streams.pop(request_id, None)
                await self._send_abort(engine, [request_id])

    def _pick(self, prompt_ids: list[int] | None) -> _Engine:
        alive = [e for e in self.engines.values() if e.alive]
        chosen = balancer.pick([e.load for e in alive], prompt_ids, self.prefix_aware)
        return self.engines[chosen.rank]

    async def _send_abort(self, engine: _Engine, request_ids: list[str]) -> None:
        if engine.alive:
            await engine.socket.send(m.encoder.encode(m.Abort(request_ids)), copy=False)

    async def abort(self, request_id: str) -> None:
        """End a request now; its stream gets the final ``abort`` output."""
        stream = self._streams.get(request_id)
        if stream is not None:
            await self._send_abort(self.engines[stream.engine], [request_id])

    async def abort_all(self) -> None:
        """End every in-flight request (a draining server's deadline passed)."""
        by_engine: dict[int, list[str]] = {}
        for request_id, stream in self._streams.items():
            by_engine.setdefault(stream.engine, []).append(request_id)
        for rank, request_ids in by_engine.items():
            await self._send_abort(self.engines[rank], request_ids)

    def num_in_flight(self) -> int:
        return len(self._streams)

    def stats(self) -> EngineStats:
        total = EngineStats()
        for engine in self.engines.values():
            if engine.alive:
                for name, value in vars(engine.load.stats).items():
                    current = getattr(total, name)
                    if isinstance(value, list):  # counts by position: added position by position
                        value = [a + b for a, b in itertools.zip_longest(current, value, fillvalue=0)]
                    else:
                        value = current + value
                    setattr(total, name, value)
        alive = sum(e.alive for e in self.engines.values())
        total.kv_cache_usage /= max(alive, 1)
        return total

    def engine_stats(self) -> dict[int, EngineStats | None]:
        return {rank: e.load.stats if e.alive else None for rank, e in sorted(self.engines.items())}

    def check_health(self) -> None:
        if self._dead is not None:
            raise self._dead

    def on_dead(self, callback: Callable[[EngineDeadError], None]) -> None:
        self._on_dead.append(callback)

    async def _call(self, method: str, *args: Any) -> dict[int, m.UtilityResult]:
        """Call an engine method on every live engine core."""
        self._started()
        self.check_health()
        alive = [e for e in self.engines.values() if e.alive]
        call_id = next(self._call_ids)
        future = asyncio.get_running_loop().create_future()
        self._calls[call_id] = (future, {}, len(alive))
        for engine in alive:
            await engine.socket.send(m.encoder.encode(m.Utility(call_id, self.client_index, method, list(args))))
        results = await future
        for result in results.values():
            if result.error is not None:
                raise m.error_from(result.error)
        return results

    async def add_lora(self, lora_request: LoRARequest) -> bool:
        results = await self._call("add_lora", lora_request)
        await self._refresh_loras()
        return any(r.result for r in results.values())

    async def remove_lora(self, lora_name: str) -> bool:
        results = await self._call("remove_lora", lora_name)
        await self._refresh_loras()
        return any(r.result for r in results.values())

    async def _refresh_loras(self) -> None:
        results = await self._call("list_loras")
        first = results[min(results)].result or []
        self._loras = [LoRARequest(**r) if isinstance(r, dict) else r for r in first]

    def list_loras(self) -> list[LoRARequest]:
        return list(self._loras)

    # -- sleep mode (--enable-sleep-mode) ----------------------------------------------------

    async def sleep(self, level: int = 1) -> None:
        """Every engine core frees its KV cache (level 1) or its weights too (level 2) once
        its running requests have finished; requests get 503 until ``wake_up``."""
        if not self.sleep_enabled:
            raise NotSupportedError("sleep mode is off; start the server with --enable-sleep-mode")
        if level not in (1, 2):
            raise InvalidParameterError("level", f"must be 1 or 2, got {level}")
        self._sleeping = True
        await self._call("sleep", level)

    async def wake_up(self) -> None:
        if not self.sleep_enabled:
            raise NotSupportedError("sleep mode is off; start the server with --enable-sleep-mode")
        await self._call("wake_up")
        self._sleeping = False

    def is_sleeping(self) -> bool:
        return self._sleeping

    async def shutdown(self) -> None:
        """Close this client; when it started the engine cores, stop them too (API servers
        sharing engine cores leave that to the process that started them)."""
        for task in self._tasks:  # first: engine cores stopped on purpose are no deaths to report
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.launcher is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.launcher.stop)
        if self._context is not None:
            asyncio.get_running_loop().remove_reader(self._output_socket.FD)
            for engine in self.engines.values():
                if engine.socket is not None:
                    engine.socket.close(linger=500)
            self._output_socket.close(linger=0)
            self._context.term()
            self._context = None


def _split_prompt(prompt: PromptInput) -> tuple[list[int] | None, str | None]:
    if isinstance(prompt, str):
        return None, prompt
    if isinstance(prompt, dict):
        ids = prompt.get("prompt_token_ids")
        return (list(ids) if ids is not None else None), prompt.get("prompt")
    return list(prompt), None
