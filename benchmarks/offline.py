"""fw's offline speed against transformers' generate, both measured in this one run.

    python benchmarks/offline.py                  # the embedded SmolLM2-135M-Instruct
    python benchmarks/offline.py --quick          # a smaller smoke run of the same logic
    python benchmarks/offline.py --model PATH --dtype float32
    python benchmarks/offline.py --models         # the model table (below)

Two figures, as issue 3 asks: offline throughput (64 prompts of 64 random tokens, 128
output tokens each, end-of-sequence ignored, all given at once; transformers in batches
of 32) and single-stream decode (a few prompts of the same shape, one at a time, for both).
Single-stream tokens/s include each prompt's prefill, as a user waiting on one reply sees
it. The work is done by `fw bench throughput`'s own functions, so the numbers mean what
that command's do; the table is Markdown, to paste into docs/benchmarks.md with the
command printed under it.

``--models`` measures fw alone on several GGUF models instead, all loaded at once in bf16
and measured in alternating rounds (this machine's speed drifts): SmolLM2 Q4_1, Gemma 3
270M Q4_K_M (default ``gguf`` and ``gguf_lean``) and the same Gemma in Q4_1
(``gguf_models.requantize``), and a random 1024-wide Llama in llama.cpp's Q4_K_M recipe
and in Q4_1 (``gguf_models.synthetic_q4_k_m``). Per model: file size, the bytes its weights hold, a fresh
process's resident memory with it loaded (and at its peak while loading), and decode
tokens/s at batch 1 and 8 (median steps, prompts excluded); and the Q4_K_M / Q4_1 decode
ratio of each round.
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
    parser.add_argument("--models", action="store_true", help="the GGUF model table instead (see above)")
    parser.add_argument("--rounds", type=int, default=3, help="--models: alternating measurement rounds")
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


def model_rows(args: argparse.Namespace) -> dict:
    import statistics

    from fw import LLM
    from fw.model_loader.default_model import default_model_path
    from gguf_models import (decode_rate, gemma3_q4_k_m, process_memory, requantize, synthetic_q4_k_m,
                             weight_bytes)

    gemma = gemma3_q4_k_m()
    gemma_q4_1 = requantize(gemma, gemma.with_name("gemma-3-270m-q4_1.gguf"))
    llama = synthetic_q4_k_m(gemma.parent)
    llama_q4_1 = requantize(llama, llama.with_name("synthetic-llama-1024-q4_1.gguf"))
    models = [("SmolLM2-135M-Instruct Q4_1", default_model_path(), None),
              ("Gemma 3 270M Q4_K_M", gemma, None),
              ("Gemma 3 270M Q4_K_M, gguf_lean", gemma, "gguf_lean"),
              ("Gemma 3 270M Q4_1", gemma_q4_1, None),
              ("random Llama, 1024 wide, Q4_K_M recipe", llama, None),
              ("random Llama, 1024 wide, Q4_1", llama_q4_1, None)]
    #: (Q4_K_M row, Q4_1 row) pairs whose decode speeds are compared round by round
    pairs = {"Gemma 3 270M": (1, 3), "random Llama": (4, 5)}
    steps = 8 if args.quick else 48
    loaded = []
    for label, path, method in models:
        rss, peak = process_memory(path, method)
        llm = LLM(str(path), quantization=method, max_model_len=1024, kv_cache_memory_bytes=64 * 1024**2,
                  use_tqdm_on_load=False)
        loaded.append({"label": label, "llm": llm, "file": path.stat().st_size,
                       "weights": weight_bytes(llm.engine.loaded.model), "rss": rss, "peak": peak,
                       "rates": {1: [], 8: []}})
    ratios = {name: {1: [], 8: []} for name in pairs}
    for _ in range(args.rounds):
        for batch in (1, 8):
            for row in loaded:
                row["rates"][batch].append(decode_rate(row["llm"], batch, steps))
            for name, (k_quant, q4_1) in pairs.items():
                ratios[name][batch].append(loaded[k_quant]["rates"][batch][-1] / loaded[q4_1]["rates"][batch][-1])
    return {"rounds": args.rounds, "steps": steps, "idle_rss": process_memory(None)[0],
            "models": [{key: value for key, value in row.items() if key != "llm"} for row in loaded],
            "q4_k_m_over_q4_1": {name: {batch: statistics.median(values) for batch, values in by_batch.items()}
                                 for name, by_batch in ratios.items()},
            "ratios": ratios}


def models_table(result: dict, argv: list[str]) -> str:
    import statistics

    mb = 1024 ** 2
    lines = ["| model | file MB | weights held MB | process RSS MB (peak) | decode tok/s, batch 1 | batch 8 |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in result["models"]:
        lines.append(f"| {row['label']} | {row['file'] / mb:.0f} | {row['weights'] / mb:.0f} | "
                     f"{row['rss'] / mb:.0f} ({row['peak'] / mb:.0f}) | {statistics.median(row['rates'][1]):.1f} | "
                     f"{statistics.median(row['rates'][8]):.1f} |")
    lines += ["", f"A process with torch and fw imported and no model: {result['idle_rss'] / mb:.0f} MB resident; "
                  "every process has a 64 MiB KV cache."]
    for name, ratio in result["q4_k_m_over_q4_1"].items():
        rounds = result["ratios"][name]
        lines += ["", f"{name}, Q4_K_M / Q4_1 decode speed, median of {result['rounds']} alternating rounds: "
                      f"{ratio[1]:.2f} at batch 1, {ratio[8]:.2f} at batch 8 "
                      f"(rounds: {', '.join(f'{r:.2f}' for r in rounds[1])} / "
                      f"{', '.join(f'{r:.2f}' for r in rounds[8])})"]
    lines += ["", f"command: python benchmarks/offline.py {shlex.join(argv)}".rstrip()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import click

    args = parse_args(argv)
    if args.models:
        result = model_rows(args)
        print(models_table(result, argv))
        if args.output_json:
            Path(args.output_json).write_text(json.dumps(result, indent=2) + "\n")
        return 0
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
