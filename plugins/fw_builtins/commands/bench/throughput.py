"""`fw bench throughput`: how fast the offline engine gets through a whole set of
prompts given at once, in requests and tokens per second.

The prompts are random tokens or come from a ShareGPT (or JSONL) file, through the same
loaders as `fw bench serve`. ``--hf-baseline`` also runs transformers' ``generate`` on
the same prompts in the same process and prints how many times faster fw is.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

import click
from pydantic import Field, model_validator

from fw.cli.config_command import config_command
from fw.config import ConfigGroup, EngineConfig, option

#: output length of random prompts when --output-len is not given
RANDOM_OUTPUT_LEN = 128
#: output length of custom (JSONL) prompts when --output-len is not given
CUSTOM_OUTPUT_LEN = 256


class ThroughputOptions(ConfigGroup):
    group_title = "Throughput"
    group_help = "The prompts to run, and the transformers baseline."

    dataset_name: Literal["random", "sharegpt", "custom"] = option(
        "random", "random: random tokens of --input-len; sharegpt: first turns of a ShareGPT "
                  "JSON file; custom: a JSONL file of {\"prompt\": ...} lines.")
    dataset_path: str | None = option(None, "The ShareGPT or custom dataset file.")
    input_len: int = option(1024, "Prompt length in tokens (random dataset).", ge=1)
    output_len: int | None = option(
        None, f"Output length in tokens for every prompt; when not given, {RANDOM_OUTPUT_LEN} "
              f"(random), the recorded reply's (sharegpt) or {CUSTOM_OUTPUT_LEN} (custom).", ge=1)
    num_prompts: int = option(1000, "Number of prompts.", ge=1)
    random_range_ratio: float = option(
        0.0, "Draw random lengths uniformly within this fraction of --input-len and "
             "--output-len (0.1 = ±10%).", ge=0.0, lt=1.0)
    n: int = option(1, "Sequences generated per prompt.", ge=1)
    output_json: str | None = option(None, "Also write the figures to this JSON file.")
    disable_detokenize: bool = option(
        False, "Do not turn output tokens into text, to time the engine without the detokenizer.")
    hf_baseline: bool = option(
        False, "fw-specific: also run Hugging Face transformers' generate on the same prompts "
               "(same weights and --dtype, left-padded batches) and print fw's speed-up over it.")
    hf_max_batch_size: int = option(32, "Batch size of the --hf-baseline run.", ge=1)

    @model_validator(mode="after")
    def _dataset_file(self) -> "ThroughputOptions":
        if self.dataset_name == "random":
            return self
        if not self.dataset_path:
            raise ValueError(f"--dataset-name {self.dataset_name} needs --dataset-path")
        if not Path(self.dataset_path).is_file():
            raise ValueError(f"--dataset-path {self.dataset_path}: no such file")
        return self


class ThroughputConfig(EngineConfig):
    """The engine's option groups (whatever ``EngineConfig`` holds) plus the prompts."""

    throughput: ThroughputOptions = Field(default_factory=ThroughputOptions)


def make_requests(engine: Any, options: ThroughputOptions, seed: int) -> list:
    """The benchmark's requests, as token ids with their output lengths."""
    from fw_builtins.commands.bench.datasets import draw_length, length_range, load_prompts
    from fw_builtins.commands.bench.offline import BenchRequest, check_fits, random_ids, vocabulary
    from fw_builtins.commands.bench.serve import DatasetOptions

    rng = random.Random(seed)
    ratio = options.random_range_ratio
    if options.dataset_name == "random":
        output_len = options.output_len or RANDOM_OUTPUT_LEN
        check_fits(engine, length_range(options.input_len, ratio)[1], length_range(output_len, ratio)[1])
        vocab = vocabulary(engine)
        return [BenchRequest(random_ids(rng, vocab, draw_length(rng, options.input_len, ratio)),
                             draw_length(rng, output_len, ratio)) for _ in range(options.num_prompts)]
    dataset = DatasetOptions(dataset_name=options.dataset_name, dataset_path=options.dataset_path,
                             num_prompts=options.num_prompts, sharegpt_output_len=options.output_len,
                             custom_output_len=options.output_len or CUSTOM_OUTPUT_LEN, seed=seed)
    prompts = load_prompts(dataset, engine.tokenizer)
    return [BenchRequest(engine.tokenizer.encode(p.text), p.output_len) for p in prompts]


def measure(engine: Any, requests: list, options: ThroughputOptions, progress: bool = True) -> dict[str, Any]:
    from fw_builtins.commands.bench.offline import run_requests, throughput_figures

    outputs, elapsed = run_requests(engine, requests, options.n, not options.disable_detokenize, progress)
    generated = sum(len(c.token_ids) for output in outputs for c in output.outputs)
    return throughput_figures(elapsed, len(requests), sum(len(r.prompt_token_ids) for r in requests),
                              generated)


def format_figures(figures: dict[str, Any]) -> str:
    return (f"{figures['requests_per_second']:.2f} requests/s, {figures['tokens_per_second']:.2f} "
            f"total tokens/s, {figures['output_tokens_per_second']:.2f} output tokens/s")


def report(figures: dict[str, Any]) -> str:
    lines = [f"Throughput: {format_figures(figures)}",
             f"Total num prompt tokens:  {figures['total_prompt_tokens']}",
             f"Total num output tokens:  {figures['total_output_tokens']}"]
    baseline = figures.get("transformers")
    if baseline is not None:
        lines.append(f"transformers generate ({baseline['dtype']}, batches of {baseline['batch_size']}): "
                     f"{format_figures(baseline)}")
        lines.append(f"fw / transformers: {figures['fw_over_transformers']:.2f}x output tokens/s")
    return "\n".join(lines)


def with_baseline(figures: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    ratio = figures["output_tokens_per_second"] / baseline["output_tokens_per_second"]
    return {**figures, "transformers": baseline, "fw_over_transformers": ratio}


@config_command(ThroughputConfig, name="throughput",
                help="Run a set of prompts (random tokens or a ShareGPT file) through the offline "
                     "engine all at once and report requests/s and tokens/s. The engine options "
                     "of `fw serve` apply; --hf-baseline adds transformers' generate as a baseline.")
def throughput(config: ThroughputConfig) -> None:
    from fw_builtins.commands.bench.offline import load_engine, write_json

    options = config.throughput
    engine = load_engine(config)
    requests = make_requests(engine, options, config.model.seed)
    figures = measure(engine, requests, options)
    if options.hf_baseline:
        from fw_builtins.commands.bench import hf_baseline

        model = hf_baseline.load_model(engine, config.model.trust_remote_code)
        figures = with_baseline(figures, hf_baseline.measure(model, engine, requests, options.n,
                                                             options.hf_max_batch_size))
    click.echo(report(figures))
    write_json(options.output_json, figures)
