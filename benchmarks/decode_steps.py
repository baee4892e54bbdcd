"""Where a decode step's time goes: the decoder stack, the LM head and the engine around them.

    python benchmarks/decode_steps.py                 # batches 1, 8 and 32, embedded SmolLM2
    python benchmarks/decode_steps.py --batch 4 --steps 50 --model PATH
    python benchmarks/decode_steps.py --batch 32 --prompt-len 256   # attention over longer contexts

Each batch size gets that many requests of ``--prompt-len`` (64) prompt tokens (the model's
context must hold prompt + steps + 10), steps the engine until all are decoding, then times the median of ``--steps`` decode steps with timers around the
fused decoder (or the layer-by-layer model forward) and the LM head; the engine column is
the rest (scheduling, sampling, detokenizing). Greedy, end-of-sequence ignored.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model folder or .gguf file (default: the embedded SmolLM2)")
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 1, 8, 32)")
    parser.add_argument("--steps", type=int, default=200, help="decode steps timed per batch size")
    parser.add_argument("--prompt-len", type=int, default=64, help="prompt tokens per request")
    return parser.parse_args(argv)


@contextlib.contextmanager
def timed(obj, name: str, sink: list[float]):
    """Time every call of ``obj.name`` into ``sink`` (an instance attribute shadows the method)."""
    original = getattr(obj, name)

    def wrapper(*args):
        start = time.perf_counter()
        result = original(*args)
        sink.append(time.perf_counter() - start)
        return result

    setattr(obj, name, wrapper)
    try:
        yield
    finally:
        delattr(obj, name)


class TimedStep:
    """The runner's fused decode step, timed into ``sink``."""

    def __init__(self, step, sink: list[float]):
        self.step, self.sink = step, sink

    def takes(self, metadata) -> bool:
        return self.step.takes(metadata)

    def __call__(self, *args):
        start = time.perf_counter()
        result = self.step(*args)
        self.sink.append(time.perf_counter() - start)
        return result


@contextlib.contextmanager
def timed_stack(runner, model, sink: list[float]):
    """Time the decoder stack: the fused decode step where the runner has one, else (and
    for steps it does not take) the model's own forward."""
    step = runner.fused_decode
    if step is not None:
        runner.fused_decode = TimedStep(step, sink)
    try:
        with timed(model, "forward", sink):
            yield
    finally:
        runner.fused_decode = step


def measure(llm, batch: int, steps: int, prompt_len: int = 64) -> dict[str, float]:
    from fw import SamplingParams

    engine, model = llm.engine, llm.engine.loaded.model
    params = SamplingParams(max_tokens=steps + 10, ignore_eos=True, temperature=0.0)
    ids = [f"bench-{batch}-{i}" for i in range(batch)]
    vocab = min(20100, llm.engine.loaded.hf_config.vocab_size)  # ids 100.. (a small model: all of its own)
    for i, request_id in enumerate(ids):
        prompt = [(100 + (i * prompt_len + j) % 20000) % vocab for j in range(prompt_len)]
        engine.add_request(request_id, {"prompt_token_ids": prompt}, params)
    while any(r.num_computed_tokens < r.num_prompt_tokens for r in engine.scheduler.requests.values()):
        engine.step()
    times: dict[str, list[float]] = {"step": [], "stack": [], "head": []}
    with timed_stack(engine.runner, model, times["stack"]), timed(model, "compute_logits", times["head"]):
        for _ in range(steps):
            start = time.perf_counter()
            engine.step()
            times["step"].append(time.perf_counter() - start)
    engine.abort_request(ids)
    median = {key: statistics.median(values) * 1000 for key, values in times.items()}
    median["engine"] = median["step"] - median["stack"] - median["head"]
    return median


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from fw import LLM

    llm = LLM(args.model) if args.model else LLM(max_model_len=2048)
    print("| batch | step ms | decoder stack ms | LM head ms | engine ms | tok/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for batch in args.batch or [1, 8, 32]:
        m = measure(llm, batch, args.steps, args.prompt_len)
        print(f"| {batch} | {m['step']:.2f} | {m['stack']:.2f} | {m['head']:.2f} | {m['engine']:.2f} "
              f"| {batch / m['step'] * 1000:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
