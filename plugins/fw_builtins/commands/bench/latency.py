"""`fw bench latency`: how long one batch takes from the first prompt token in to the last
output token out, measured over repeated runs of the same shape.

Every iteration draws fresh random prompts, so the prefix cache cannot turn later
iterations into decode-only runs; drawing them happens outside the timed part.
"""

from __future__ import annotations

import random
from typing import Any

import click
from pydantic import Field

from fw.cli.config_command import config_command
from fw.config import ConfigGroup, EngineConfig, option

PERCENTILES = (10, 25, 50, 75, 90, 99)


class LatencyOptions(ConfigGroup):
    group_title = "Latency"
    group_help = "The batch to time and how many times to run it."

    input_len: int = option(32, "Prompt length in tokens (random tokens).", ge=1)
    output_len: int = option(128, "Tokens generated per sequence (end-of-sequence is ignored).", ge=1)
    batch_size: int = option(8, "Number of prompts in the batch.", ge=1)
    n: int = option(1, "Sequences generated per prompt.", ge=1)
    num_iters_warmup: int = option(10, "Untimed runs first, to warm caches and allocators.", ge=0)
    num_iters: int = option(30, "Timed runs.", ge=1)
    output_json: str | None = option(None, "Also write the latencies to this JSON file.")
    disable_detokenize: bool = option(
        False, "Do not turn output tokens into text, to time the engine without the detokenizer.")


class LatencyConfig(EngineConfig):
    """The engine's option groups (whatever ``EngineConfig`` holds) plus the batch."""

    latency: LatencyOptions = Field(default_factory=LatencyOptions)


def measure(engine: Any, options: LatencyOptions, seed: int, progress: bool = True) -> dict[str, Any]:
    """Run the batch ``num_iters_warmup + num_iters`` times; the figures of the timed runs."""
    import numpy as np
    from tqdm import tqdm

    from fw_builtins.commands.bench.offline import BenchRequest, random_ids, run_requests, vocabulary

    rng = random.Random(seed)
    vocab = vocabulary(engine)

    def once() -> float:
        batch = [BenchRequest(random_ids(rng, vocab, options.input_len), options.output_len)
                 for _ in range(options.batch_size)]
        return run_requests(engine, batch, options.n, not options.disable_detokenize)[1]

    for _ in tqdm(range(options.num_iters_warmup), desc="Warmup iterations", disable=not progress):
        once()
    latencies = [once() for _ in tqdm(range(options.num_iters), desc="Profiling iterations",
                                      disable=not progress)]
    average = float(np.mean(latencies))
    return {
        "avg_latency": average,
        "latencies": latencies,
        "percentiles": {str(p): float(np.percentile(latencies, p)) for p in PERCENTILES},
        "output_tokens_per_second": options.batch_size * options.n * options.output_len / average,
    }


def report(figures: dict[str, Any], options: LatencyOptions) -> str:
    lines = [f"Avg latency: {figures['avg_latency']:.4f} seconds"]
    lines += [f"{p}% percentile latency: {seconds:.4f} seconds"
              for p, seconds in figures["percentiles"].items()]
    lines.append(f"Output tokens/s: {figures['output_tokens_per_second']:.2f} "
                 f"(batch {options.batch_size} x n {options.n} x {options.output_len} tokens "
                 f"over the average latency)")
    return "\n".join(lines)


@config_command(LatencyConfig, name="latency",
                help="Time one batch of random-token prompts end to end, repeatedly, on the "
                     "offline engine: prints the average latency and its percentiles. The "
                     "engine options of `fw serve` apply.")
def latency(config: LatencyConfig) -> None:
    from fw_builtins.commands.bench.offline import check_fits, load_engine, write_json

    options = config.latency
    engine = load_engine(config)
    check_fits(engine, options.input_len, options.output_len)
    figures = measure(engine, options, config.model.seed)
    click.echo(report(figures, options))
    write_json(options.output_json, figures)
