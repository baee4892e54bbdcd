"""The async engine: concurrent streams, deltas, aborts that free blocks, errors before
the first output."""

from __future__ import annotations

import asyncio
import time

import pytest

from fw.config import EngineConfig
from fw.engine.async_engine import AsyncEngine
from fw.engine.sampling_params import RequestOutputKind, SamplingParams
from fw.errors import ContextLengthError, OverloadedError


@pytest.fixture(scope="module")
def engine(tiny_llama):
    engine = AsyncEngine.from_config(EngineConfig.from_options(model=str(tiny_llama), dtype="float32"))
    yield engine
    asyncio.run(engine.shutdown())


def delta(max_tokens=12, **kwargs):
    return SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True,
                          output_kind=RequestOutputKind.DELTA, **kwargs)


async def collect(engine, request_id, prompt, params):
    text, tokens, last = "", [], None
    async for output in engine.generate(prompt, params, request_id):
        text += output.outputs[0].text
        tokens += output.outputs[0].token_ids
        last = output
    return text, tokens, last


def test_concurrent_streams_complete_with_the_same_tokens(engine):
    async def main():
        return await asyncio.gather(*(collect(engine, f"r{i}", "Hello! How are you", delta()) for i in range(16)))

    results = asyncio.run(main())
    assert len({tuple(tokens) for _, tokens, _ in results}) == 1
    assert all(last.finished and len(tokens) == 12 for _, tokens, last in results)
    assert engine.stats().num_running == 0


def test_closing_the_stream_aborts_and_frees_blocks(engine):
    async def main():
        stream = engine.generate("Once upon a time", delta(max_tokens=400), "gone")
        await stream.__anext__()
        await stream.aclose()
        for _ in range(100):
            await asyncio.sleep(0.02)
            stats = engine.stats()
            if stats.num_running == 0 and stats.num_free_blocks == stats.num_blocks:
                return stats
        return engine.stats()

    stats = asyncio.run(main())
    assert stats.num_running == 0 and stats.num_free_blocks == stats.num_blocks


def test_abort_ends_the_stream_with_finish_reason_abort(engine):
    async def main():
        outputs = []

        async def consume():
            async for output in engine.generate("Once upon a time", delta(max_tokens=400), "stopme"):
                outputs.append(output)

        task = asyncio.create_task(consume())
        while not outputs:
            await asyncio.sleep(0.01)
        await engine.abort("stopme")
        await asyncio.wait_for(task, 10)
        return outputs

    outputs = asyncio.run(main())
    assert outputs[-1].finished and outputs[-1].outputs[0].finish_reason == "abort"


def test_invalid_request_raises_before_any_output(engine):
    async def main():
        with pytest.raises(ContextLengthError):
            async for _ in engine.generate("hi", delta(max_tokens=10_000), "toolong"):
                pass

    asyncio.run(main())
    engine.check_health()


def test_callers_cancelled_while_their_request_is_added_leave_the_loop_alive_and_idle(engine):
    """A client that goes away while its request is handed to the loop: the hand-over is
    dropped or undone, never left running, and the loop survives (setting the result of
    a cancelled future used to kill it)."""
    async def main():
        for i in range(30):
            task = asyncio.ensure_future(collect(engine, f"gone{i}", "Hello! How are you", delta(max_tokens=200)))
            await asyncio.sleep(0.0005 * (i % 6))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return await collect(engine, "after", "Hello! How are you", delta(max_tokens=3))

    _, tokens, last = asyncio.run(asyncio.wait_for(main(), 60))  # a dead loop answers nothing
    assert last.finished and len(tokens) == 3
    engine.check_health()
    deadline = time.monotonic() + 10
    while engine.stats().num_running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.stats().num_running == 0 and engine.stats().kv_cache_usage == 0


def test_a_full_waiting_queue_refuses_with_overloaded(tiny_llama):
    # --max-num-seqs 1: eight requests may wait (and one run); the rest are refused (HTTP 503), not queued
    engine = AsyncEngine.from_config(EngineConfig.from_options(model=str(tiny_llama), dtype="float32",
                                                               max_num_seqs=1))

    async def main():
        async def one(i):
            try:
                return await collect(engine, f"q{i}", "Hello! How are you", delta(max_tokens=40))
            except OverloadedError as exc:
                return exc

        return await asyncio.gather(*(one(i) for i in range(12)))

    try:
        results = asyncio.run(main())
    finally:
        asyncio.run(engine.shutdown())
    refused = [r for r in results if isinstance(r, OverloadedError)]
    served = [r for r in results if not isinstance(r, OverloadedError)]
    assert len(served) in (8, 9), len(served)  # eight waiting, and the running one if it started first
    assert "waiting queue is full (8 requests)" in str(refused[0])
    assert all(len(tokens) == 40 for _, tokens, _ in served)
