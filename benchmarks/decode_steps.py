"""Where a decode step's time goes: the decoder stack, the LM head and the engine around them.

    python benchmarks/decode_steps.py                 # batches 1, 8 and 32, embedded SmolLM2
    python benchmarks/decode_steps.py --batch 4 --steps 50 --model PATH
    python benchmarks/decode_steps.py --batch 32 --prompt-len 256   # attention over longer contexts
    python benchmarks/decode_steps.py --batch 1 --breakdown         # the engine's part, phase by phase
    python benchmarks/decode_steps.py --batch 1 --breakdown --baseline ../other-checkout --rounds 5

Each batch size gets that many requests of ``--prompt-len`` (64) prompt tokens (the model's
context must hold prompt + steps + 10), steps the engine until all are decoding, then times
the median of ``--steps`` decode steps with timers around the fused decoder (or the
layer-by-layer model forward) and the LM head; the engine column is the rest (scheduling,
sampling, detokenizing). Greedy, end-of-sequence ignored.

``--breakdown`` splits the engine column into its phases: schedule, prepare (flattening
the batch into the runner's inputs), sample (sampling metadata, masks, the sampler),
update (the scheduler takes the step's tokens), output (detokenization, stop strings,
outputs) and the rest of the step (the runner's glue); ``messages`` is what the engine
core process does with a step's outputs besides (encoding them for the API server, which
decodes them): it runs on another thread, beside the next step, and is not part of the
step. ``--baseline PATH`` measures another fw checkout the same way (this script, that
checkout's source roots), alternating ``--rounds`` times, and prints the medians of both
and their ratio: the machine is noisy, so compare medians of alternated runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkouts import alternate  # noqa: E402

#: phase -> (engine attribute holding the object, method timed); absent ones are skipped
PHASES = {"schedule": ("scheduler", "schedule"), "prepare": ("runner", "prepare"),
          "sample": ("runner", "_sample"), "update": ("scheduler", "update_from_output"),
          "output": ("output", "process")}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model folder or .gguf file (default: the embedded SmolLM2)")
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 1, 8, 32)")
    parser.add_argument("--steps", type=int, default=200, help="decode steps timed per batch size")
    parser.add_argument("--prompt-len", type=int, default=64, help="prompt tokens per request")
    parser.add_argument("--breakdown", action="store_true", help="time the engine's phases one by one")
    parser.add_argument("--baseline", type=Path, help="another fw checkout to measure alternately with this one")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --baseline")
    parser.add_argument("--json", action="store_true", help="print one JSON object of figures per batch size")
    return parser.parse_args(argv)


@contextlib.contextmanager
def timed(obj, name: str, sink: list[float]):
    """Time every call of ``obj.name`` into ``sink`` (an instance attribute shadows the method)."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = original(*args, **kwargs)
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


def _messages(engine, outputs) -> float:
    """Seconds to encode a step's outputs as the engine core sends them and decode them as
    the API server receives them."""
    from fw.engine.core import messages as m

    start = time.perf_counter()
    for output in outputs:  # the prompt goes out with a request's first output only
        output.prompt, output.prompt_token_ids = None, []
    frame = m.encoder.encode(m.Outputs(0, outputs=outputs, errors={}, stats=engine.stats(), pooled=[]))
    m.from_engine.decode(frame)
    return time.perf_counter() - start


def measure(llm, batch: int, steps: int, prompt_len: int = 64, breakdown: bool = False) -> dict[str, float]:
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
    with contextlib.ExitStack() as stack:
        stack.enter_context(timed_stack(engine.runner, model, times["stack"]))
        stack.enter_context(timed(model, "compute_logits", times["head"]))
        if breakdown:
            times["messages"] = []
            for phase, (holder, method) in PHASES.items():
                obj = getattr(engine, holder)
                if hasattr(obj, method):
                    stack.enter_context(timed(obj, method, times.setdefault(phase, [])))
        per_step: dict[str, list[float]] = {key: [] for key in times}
        for _ in range(steps):
            seen = {key: len(values) for key, values in times.items()}
            start = time.perf_counter()
            outputs = engine.step()
            times["step"].append(time.perf_counter() - start)
            if breakdown:
                times["messages"].append(_messages(engine, outputs))
            for key, values in times.items():  # this step's share of each timer
                per_step[key].append(sum(values[seen[key]:]))
    engine.abort_request(ids)
    # The engine's part is computed step by step (the step less its own stack and head
    # time) before the median: a busy machine makes the stack's time bimodal, and a
    # difference of medians would then mean nothing.
    per_step["engine"] = [s - a - b for s, a, b in zip(per_step["step"], per_step["stack"], per_step["head"])]
    if breakdown:
        phases = [per_step[phase] for phase in PHASES if phase in per_step]
        per_step["rest"] = [e - sum(parts) for e, *parts in zip(per_step["engine"], *phases)]
    return {key: statistics.median(values) * 1000 for key, values in per_step.items() if any(values)}


def _table(rows: list[tuple[str, int, dict[str, float]]], breakdown: bool) -> None:
    columns = ["step", "stack", "head", "engine"] + ([*PHASES, "rest", "messages"] if breakdown else [])
    labels = {"stack": "decoder stack", "head": "LM head"}
    print("| checkout | batch | " + " | ".join(f"{labels.get(c, c)} ms" for c in columns) + " | tok/s |")
    print("|---|---:|" + "---:|" * (len(columns) + 1))
    for label, batch, m in rows:
        cells = " | ".join(f"{m.get(c, float('nan')):.3f}" for c in columns)
        rate = f"{1 / m['step']:.3f}" if "/" in label else f"{batch / m['step'] * 1000:.0f}"
        print(f"| {label} | {batch} | {cells} | {rate} |")


def compare(args: argparse.Namespace, argv: list[str]) -> int:
    """Alternate this checkout and ``--baseline``; medians of each figure and their ratio."""
    runs = alternate(__file__, args.baseline, args.rounds, argv)
    rows = []
    for index, batch in enumerate(args.batch or [1, 8, 32]):
        medians = {}
        for label, results in runs.items():
            figures = [result[index]["figures"] for result in results]
            medians[label] = {key: statistics.median(f[key] for f in figures) for key in figures[0]}
            rows.append((label, batch, medians[label]))
        ratio = {key: medians["this"][key] / medians["baseline"][key]
                 for key in medians["this"] if medians["baseline"].get(key)}
        rows.append(("this / baseline", batch, ratio))
    print(f"medians of {args.rounds} alternated runs each (ratios: this checkout / the baseline)")
    _table(rows, args.breakdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.baseline is not None:
        return compare(args, argv)
    from fw import LLM

    llm = LLM(args.model) if args.model else LLM(max_model_len=2048)
    rows = []
    for batch in args.batch or [1, 8, 32]:
        figures = measure(llm, batch, args.steps, args.prompt_len, args.breakdown)
        if args.json:
            print(json.dumps({"batch": batch, "figures": figures}), flush=True)
        rows.append(("this", batch, figures))
    if not args.json:
        _table(rows, args.breakdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
