"""The CPU work of admitting a request, off the event loop and bounded.

Parsing a large body, rendering a chat template and tokenizing a prompt take time in
proportion to what the client sent: a 10 MB prompt tokenized on the event loop stopped
/health and every running stream for 4-7 s. Here that work runs on
--preprocess-workers threads. The tokenizers library releases the GIL while it encodes,
and pure-Python work (Jinja, pydantic) gives it up every few milliseconds, so the event
loop keeps answering meanwhile.

At most ``workers`` jobs run and --preprocess-queue-size wait; a request beyond that is
refused at once (503 with Retry-After) before any of its work is done. A job whose
client went away still runs to its end, and keeps its place in the bound until then.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from fw.errors import OverloadedError

T = TypeVar("T")


class PreprocessPool:
    def __init__(self, workers: int, queue_size: int):
        self.workers = workers
        self.queue_size = queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fw-preprocess")
        self._lock = threading.Lock()
        #: jobs submitted and not yet finished (running or waiting)
        self.in_flight = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a worker thread; OverloadedError when the pool is full."""
        with self._lock:
            if self.in_flight >= self.workers + self.queue_size:
                raise OverloadedError(
                    f"the server is busy preparing other requests ({self.workers} running, {self.queue_size} "
                    "waiting: --preprocess-workers, --preprocess-queue-size); retry shortly", retry_after=1)
            self.in_flight += 1
        try:
            future: Future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _future: Future | None) -> None:
        with self._lock:
            self.in_flight -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
