"""AsyncEngine: the engine loop on its own thread, streaming to asyncio callers.

The step loop must never run on the server's event loop (a forward pass takes tens of
milliseconds). Callers hand requests and aborts to the loop thread as commands; the loop
runs them between steps (the engine's state is touched by that thread only) and pushes
each RequestOutput into the caller's asyncio queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, AsyncIterator, Callable

from fw.config import EngineConfig
from fw.engine.admission import check_room
from fw.engine.llm_engine import LLMEngine
from fw.engine.outputs import PoolingRequestOutput, RequestOutput
from fw.engine.protocol import EngineClient, EngineStats, PromptInput
from fw.engine.sampling_params import SamplingParams
from fw.engine.sleep import LEVELS, Sleep
from fw.errors import EngineDeadError, InvalidParameterError, NotSupportedError
from fw.lora.request import LoRARequest
from fw.pooling.params import PoolingParams

logger = logging.getLogger("fw.engine")


def _deliver(items: list[tuple[asyncio.Queue, Any]]) -> None:
    for queue, item in items:
        queue.put_nowait(item)


class _Stream:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()

    def put(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class AsyncEngine(EngineClient):
    def __init__(self, engine: LLMEngine | Callable[[], LLMEngine]):
        """``engine``, or a function building it. Given a function, the engine is built on
        the loop thread itself: PyTorch's CPU thread pool belongs to the thread that first
        runs parallel work, and a second pool on another thread (one that loaded the
        model, say) keeps spinning, which halved decode speed on a 2-core machine."""
        self._commands: deque[tuple[Callable[[], Any], Future]] = deque()
        self._wakeup = threading.Event()
        self._streams: dict[str, _Stream] = {}
        self._dead: BaseException | None = None
        self._on_dead: list[tuple[asyncio.AbstractEventLoop, Callable[[EngineDeadError], None]]] = []
        self._stopping = False
        factory = (lambda: engine) if isinstance(engine, LLMEngine) else engine
        #: level 2 builds the engine again (given an engine, not a function, it cannot)
        self._sleep = Sleep(None if isinstance(engine, LLMEngine) else engine)
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(factory, ready, failure), name="fw-engine",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        engine = self.engine
        self.model_info = engine.model_info()
        self.tokenizer = engine.tokenizer
        self._stats = engine.stats()
        self._loras = engine.list_loras()
        self.sleep_enabled = engine.config.model.enable_sleep_mode

    @classmethod
    def from_config(cls, config: EngineConfig) -> "AsyncEngine":
        return cls(lambda: LLMEngine.from_config(config))

    def _run(self, factory: Callable[[], LLMEngine], ready: threading.Event, failure: list) -> None:
        try:
            self.engine = factory()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the constructing thread
            failure.append(exc)
            return
        finally:
            ready.set()
        try:
            self._loop()
        finally:
            self.engine.shutdown()  # on this thread: it may talk to tensor-parallel workers

    # -- the loop thread -----------------------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> Future:
        future: Future = Future()
        if self._dead is not None:
            future.set_exception(EngineDeadError(f"the engine loop has stopped: {self._dead}"))
            return future
        self._commands.append((fn, future))
        self._wakeup.set()
        return future

    def _loop(self) -> None:
        try:
            while not self._stopping:
                self._run_commands()
                if self.engine is not None and self.engine.has_unfinished_requests():
                    outputs = self.engine.step()
                    self._stats = self.engine.stats()  # before waking callers, who may read it
                    self._dispatch(outputs)
                else:
                    if self._sleep.pending is not None:
                        self._fall_asleep()
                    if self.engine is not None:
                        self._stats = self.engine.stats()
                    self._wakeup.wait(timeout=0.5)
                    self._wakeup.clear()
        except BaseException as exc:  # noqa: BLE001 - every waiter must learn the loop died
            logger.exception("engine loop failed")
            self._dead = exc
            error = EngineDeadError(f"the engine loop has stopped: {type(exc).__name__}: {exc}")
            for stream in list(self._streams.values()):
                stream.put(error)
            for loop, callback in self._on_dead:
                loop.call_soon_threadsafe(callback, error)
            while self._commands:
                _, future = self._commands.popleft()
                if future.set_running_or_notify_cancel():
                    future.set_exception(error)

    def _run_commands(self) -> None:
        while self._commands:
            fn, future = self._commands.popleft()
            if not future.set_running_or_notify_cancel():
                continue  # its caller went away first (cancelled): setting a result would kill the loop
            try:
                future.set_result(fn())
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                future.set_exception(exc)

    def _dispatch(self, outputs: list[RequestOutput]) -> None:
        """Hand a step's outputs to their streams with one wake-up of each event loop per
        step, not one per output (32 a step at concurrency 32, each a write to the loop's
        wake-up pipe and a turn of the loop while the next step's kernels run)."""
        batches: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue, Any]]] = {}
        for output in outputs:
            stream = self._streams.get(output.request_id)
            if stream is None:
                continue
            item = output if output.error is None else output.error
            batches.setdefault(stream.loop, []).append((stream.queue, item))
            if output.finished:
                self._streams.pop(output.request_id, None)
        for loop, items in batches.items():
            loop.call_soon_threadsafe(_deliver, items)

    # -- EngineClient ----------------------------------------------------------------------

    async def generate(self, prompt: PromptInput, params: SamplingParams, request_id: str, *,
                       priority: int = 0, lora_request: Any = None,
                       keep_special_ids: frozenset[int] = frozenset(),
                       reasoning_end_ids: tuple[int, ...] | None = None) -> AsyncIterator[RequestOutput]:
        if params.structured_outputs is not None and self.engine is not None:
            await self._compile(params)
        async for output in self._submit(request_id, lambda: self.engine.add_request(
                request_id, prompt, params, priority=priority, lora_request=lora_request,
                keep_special_ids=keep_special_ids, reasoning_end_ids=reasoning_end_ids)):
            yield output

    async def encode(self, prompt: PromptInput, params: PoolingParams, request_id: str, *,
                     priority: int = 0) -> AsyncIterator[PoolingRequestOutput]:
        async for output in self._submit(request_id, lambda: self.engine.add_request(
                request_id, prompt, params, priority=priority)):
            yield output

    async def _submit(self, request_id: str, add_request: Callable[[], None]) -> AsyncIterator[Any]:
        """Admit a request on the loop thread (``add_request``) and stream its outputs;
        a request left unfinished by its caller is aborted."""
        stream = _Stream(asyncio.get_running_loop())

        def add() -> None:
            check_room(self.engine, self._sleep.sleeping)
            add_request()
            self._streams[request_id] = stream

        try:
            await asyncio.wrap_future(self._call(add))
        except asyncio.CancelledError:
            # the caller left while the request was being added: it may have been added
            # anyway (the loop had started the command), so take it out again
            self._call(lambda: self._abort_now(request_id))
            raise
        finished = False
        try:
            while True:
                item = await stream.queue.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                yield item
                if finished:
                    return
        finally:
            if not finished:
                self._call(lambda: self._abort_now(request_id))

    async def _compile(self, params: SamplingParams) -> None:
        """Compile a new grammar on a worker thread, so the step loop keeps decoding the
        other requests meanwhile; the engine then finds it in its cache."""
        timeout = self.engine.config.structured_outputs.guided_decoding_compile_timeout
        work = asyncio.get_running_loop().run_in_executor(None, self.engine.structured.compile,
                                                          params.structured_outputs)
        try:
            await asyncio.wait_for(asyncio.shield(work), timeout)
        except asyncio.TimeoutError:
            raise InvalidParameterError(
                params.structured_outputs.param_name(),
                f"the grammar did not compile within {timeout:g} s "
                "(--guided-decoding-compile-timeout); simplify it") from None

    def _abort_now(self, request_id: str) -> None:
        self._streams.pop(request_id, None)
        if self.engine is not None:  # None: asleep at level 2, with nothing running
            self.engine.abort_request(request_id)

    async def abort(self, request_id: str) -> None:
        def abort() -> None:
            stream = self._streams.pop(request_id, None)
            for output in self.engine.abort_request(request_id) if self.engine is not None else ():
                if stream is not None:
                    stream.put(output)

        await asyncio.wrap_future(self._call(abort))

    def stats(self) -> EngineStats:
        return self._stats

    async def add_lora(self, lora_request: LoRARequest) -> bool:
        return await asyncio.wrap_future(self._call(lambda: self._change_loras(self.engine.add_lora, lora_request)))

    async def remove_lora(self, lora_name: str) -> bool:
        return await asyncio.wrap_future(self._call(lambda: self._change_loras(self.engine.remove_lora, lora_name)))

    def list_loras(self) -> list[LoRARequest]:
        return list(self._loras)  # a snapshot, refreshed by the loop thread on every change

    def _change_loras(self, change: Callable[[Any], bool], argument: Any) -> bool:
        try:
            return change(argument)
        finally:
            self._loras = self.engine.list_loras()

    def on_dead(self, callback: Callable[[EngineDeadError], None]) -> None:
        self._on_dead.append((asyncio.get_running_loop(), callback))
    # -- sleep mode (fw.engine.sleep) ----------------------------------------------------

    async def sleep(self, level: int = 1) -> None:
        """Free the KV cache (level 1) or the weights too (level 2) once the requests in
        flight have finished; new requests are refused (503) from now until ``wake_up``."""
        if not self.sleep_enabled:
            raise NotSupportedError("sleep mode is off; start the server with --enable-sleep-mode")
        if level not in LEVELS:
            raise InvalidParameterError("level", f"must be 1 or 2, got {level}")
        if level == 2 and self._sleep.rebuild is None:
            raise NotSupportedError("this engine cannot be rebuilt, so it cannot sleep at level 2", param="level")
        done: Future = Future()

        def request() -> None:
            if not self._sleep.request(level, done):
                done.set_result(None)  # already asleep (or falling asleep): nothing to do

        await asyncio.wrap_future(self._call(request))
        await asyncio.wrap_future(done)

    def _fall_asleep(self) -> None:
        done = self._sleep.pending[1]
        try:
            self.engine = self._sleep.fall_asleep(self.engine)
            done.set_result(None)
        except Exception as exc:  # noqa: BLE001 - handed to the caller of sleep()
            done.set_exception(exc)

    async def wake_up(self) -> None:
        """Take the memory back (level 2: the engine is built again from the model's files)."""
        if not self.sleep_enabled:
            raise NotSupportedError("sleep mode is off; start the server with --enable-sleep-mode")
        await asyncio.wrap_future(self._call(self._wake))

    def _wake(self) -> None:
        self.engine = self._sleep.wake_up(self.engine)
        self._loras = self.engine.list_loras()

    def is_sleeping(self) -> bool:
        return bool(self._sleep.level)

    def check_health(self) -> None:
        if self._dead is not None or not self._thread.is_alive():
            raise EngineDeadError(f"the engine loop has stopped: {self._dead}")

    async def shutdown(self) -> None:
        self._stopping = True
        self._wakeup.set()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 5.0)
