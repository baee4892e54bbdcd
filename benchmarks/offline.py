"""fw's offline speed against transformers' generate, both measured in this one run.

    python benchmarks/offline.py                  # the embedded SmolLM2-135M-Instruct
    python benchmarks/offline.py --quick          # a smaller smoke run of the same logic
    python benchmarks/offline.py --model PATH --dtype float32

Two figures, as issue 3 asks: offline throughput (64 prompts of 64 random tokens, 128
output tokens each, end-of-sequence ignored, all given at once; transformers in batches
of 32) and single-stream decode (a few prompts of the same shape, one at a time, for both).
Single-stream tokens/s include each prompt's prefill, as a user waiting on one reply sees
it. The work is done by `fw bench throughput`'s own functions, so the numbers mean what
that command's do; the table is Markdown, to paste into docs/benchmarks.md with the
command printed under it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

#: (prompts, prompt tokens, output tokens, transformers batch, single-stream prompts)
FULL = (64, 64, 128, 32, 4)
QUICK = (8, 32, 16, 8, 2)
TARGETS = "issue 3 targets (full run, SmolLM2): offline >= 3x transformers; single stream >= 110 tok/s"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model folder or .gguf file (default: the embedded SmolLM2)")
    parser.add_argument("--dtype", default="auto", help="fw's --dtype, used by both (default: auto)")
    parser.add_argument("--quick", action="store_true", help="a smaller run, to check the script works")
    parser.add_argument("--output-json", help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    import torch

    from fw.config import build_bundle
    from fw_builtins.commands.bench import hf_baseline
    from fw_builtins.commands.bench.offline import load_engine, throughput_figures
    from fw_builtins.commands.bench.throughput import ThroughputConfig, make_requests, measure

    prompts, input_len, output_len, hf_batch, streams = QUICK if args.quick else FULL
    options = {"input_len": input_len, "output_len": output_len, "num_prompts": prompts,
               "dtype": args.dtype, "use_tqdm_on_load": False}
    config = build_bundle(ThroughputConfig, {**options, **({"model": args.model} if args.model else {})})
    engine = load_engine(config)
    bench = config.throughput
    batch = make_requests(engine, bench, config.model.seed)
    # fresh prompts for the single stream: the batch's are in the prefix cache by then
    single = make_requests(engine, bench.model_copy(update={"num_prompts": streams}), config.model.seed + 1)

    fw_batch = measure(engine, batch, bench, progress=False)
    runs = [measure(engine, [request], bench, progress=False) for request in single]
    fw_single = throughput_figures(sum(r["elapsed_time"] for r in runs), len(single),
                                   sum(r["total_prompt_tokens"] for r in runs),
                                   sum(r["total_output_tokens"] for r in runs))
    model = hf_baseline.load_model(engine, config.model.trust_remote_code)
    hf_batch_figures = hf_baseline.measure(model, engine, batch, 1, hf_batch)
    hf_single = hf_baseline.measure(model, engine, single, 1, 1)
    return {
        "model": str(engine.loaded.path), "dtype": str(engine.loaded.dtype).removeprefix("torch."),
        "device": engine.loaded.device.type, "torch_threads": torch.get_num_threads(),
        "shape": {"prompts": prompts, "input_len": input_len, "output_len": output_len,
                  "transformers_batch": hf_batch, "single_stream_prompts": streams},
        "offline": {"fw": fw_batch, "transformers": hf_batch_figures},
        "single_stream": {"fw": fw_single, "transformers": hf_single},
    }


def table(result: dict, argv: list[str]) -> str:
    shape = result["shape"]
    rows = [
        ("offline", f"offline throughput: {shape['prompts']} prompts x {shape['input_len']} tokens -> "
                    f"{shape['output_len']} (transformers batch {shape['transformers_batch']})"),
        ("single_stream", f"single stream: {shape['single_stream_prompts']} prompts one at a time, "
                          f"{shape['input_len']} -> {shape['output_len']}"),
    ]
    lines = [f"{Path(result['model']).name}, {result['dtype']}, {result['device']}, "
             f"{result['torch_threads']} torch threads", "",
             "| run | fw output tok/s | transformers output tok/s | fw / transformers |",
             "|---|---:|---:|---:|"]
    for key, label in rows:
        fw = result[key]["fw"]["output_tokens_per_second"]
        hf = result[key]["transformers"]["output_tokens_per_second"]
        lines.append(f"| {label} | {fw:.1f} | {hf:.1f} | {fw / hf:.2f}x |")
    lines += ["", f"command: python benchmarks/offline.py {shlex.join(argv)}".rstrip(), TARGETS]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import click

    args = parse_args(argv)
    try:
        result = run(args)
    except click.ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 1
    print(table(result, argv))
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
