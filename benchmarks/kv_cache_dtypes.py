"""What a quantized KV cache (``--kv-cache-dtype``) costs in accuracy and gives in room and speed.

    python benchmarks/kv_cache_dtypes.py                   # embedded SmolLM2, 8 chat prompts x 64 tokens
    python benchmarks/kv_cache_dtypes.py --model PATH --steps 50 --rounds 3
    python benchmarks/kv_cache_dtypes.py --formats auto,int8 --batch 32 --prompt-len 512 --memory 1G
    python benchmarks/kv_cache_dtypes.py --quick --model TINY   # the test's size

For each cache format (``auto`` = the model's dtype, ``int8``, ``fp8`` with scale 1.0,
``fp8+scales`` = fp8 with ``--calculate-kv-scales``) one engine is built with the same
``--kv-cache-memory-bytes`` and measured three ways:

* accuracy against ``auto``: greedy continuations of fixed chat prompts: the share of
  prompts whose tokens are all identical, the mean position of the first different token
  (``--max-tokens`` when none differs), and over the tokens before it, the mean and
  largest |difference| of the chosen token's logprob;
* room: the KV tokens that fit in the same memory;
* speed: the median decode step at each ``--batch`` (benchmarks/decode_steps.py's
  measurement), in alternating rounds across the formats because the machine is noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode_steps import measure  # noqa: E402

#: name -> LLM options
FORMATS = {"auto": {}, "int8": {"kv_cache_dtype": "int8"}, "fp8": {"kv_cache_dtype": "fp8"},
           "fp8+scales": {"kv_cache_dtype": "fp8", "calculate_kv_scales": True}}
PROMPTS = [
    "What is the capital of France, and what is it known for?",
    "Write a short poem about the sea.",
    "Explain in simple words how a CPU executes a program.",
    "Give me three tips for learning a new language.",
    "What is the difference between a list and a tuple in Python?",
    "Summarize the plot of Romeo and Juliet in a few sentences.",
    "Why is the sky blue?",
    "Suggest a name for a small bakery and explain why.",
]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model folder or .gguf file (default: the embedded SmolLM2)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: " + ", ".join(FORMATS))
    parser.add_argument("--prompts", type=int, default=len(PROMPTS), help="chat prompts compared")
    parser.add_argument("--max-tokens", type=int, default=64, help="greedy tokens per prompt")
    parser.add_argument("--batch", type=int, action="append", help="decode batch sizes timed (default 1, 32)")
    parser.add_argument("--steps", type=int, default=30, help="decode steps timed per batch and round")
    parser.add_argument("--prompt-len", type=int, default=64, help="prompt tokens of each timed request")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timing rounds")
    parser.add_argument("--memory", default="256M", help="--kv-cache-memory-bytes of every engine")
    parser.add_argument("--quick", action="store_true", help="2 prompts x 8 tokens, batches 1 and 2, 3 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.max_tokens, args.steps, args.rounds = 2, 8, 3, 1
        args.batch = args.batch or [1, 2]
    args.batch = args.batch or [1, 32]
    return args


def answers(llm, prompts: list[str], max_tokens: int) -> list[list[tuple[int, float]]]:
    """Each prompt's greedy (token, logprob) pairs."""
    from fw import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, logprobs=0)
    outputs = llm.chat([[{"role": "user", "content": p}] for p in prompts], params, use_tqdm=False)
    return [[(t, step[t].logprob) for t, step in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)]
            for o in outputs]


def agreement(reference: list[list[tuple[int, float]]], other: list[list[tuple[int, float]]]) -> dict[str, float]:
    """identical: % of prompts with the same tokens; divergence: mean first different
    position; mean/max |delta logprob| of the chosen token before that position."""
    firsts, deltas = [], []
    for want, got in zip(reference, other):
        first = next((i for i, (a, b) in enumerate(zip(want, got)) if a[0] != b[0]), min(len(want), len(got)))
        firsts.append(first)
        deltas += [abs(a[1] - b[1]) for a, b in zip(want[:first], got[:first])]
    return {"identical": 100.0 * sum(f == len(w) for f, w in zip(firsts, reference)) / len(reference),
            "divergence": statistics.mean(firsts),
            "mean_delta": statistics.mean(deltas) if deltas else 0.0, "max_delta": max(deltas, default=0.0)}


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from fw import LLM

    names = args.formats.split(",")
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise SystemExit(f"unknown format(s) {unknown}; choose from {list(FORMATS)}")
    longest = args.prompt_len + args.steps + 10
    common = {"kv_cache_memory_bytes": args.memory, "max_model_len": max(512, longest + 64)}
    llms = {n: (LLM(args.model, **common, **FORMATS[n]) if args.model else LLM(**common, **FORMATS[n]))
            for n in names}
    prompts = (PROMPTS * (args.prompts // len(PROMPTS) + 1))[: args.prompts]
    results = {n: {} for n in names}
    reference = answers(llms[names[0]], prompts, args.max_tokens)
    for n in names:
        engine = llms[n].engine
        results[n]["kv_tokens"] = engine.kv.num_blocks * engine.kv.block_size
        results[n].update(agreement(reference, answers(llms[n], prompts, args.max_tokens)))
    steps: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for batch in args.batch:
            for n in names:
                steps.setdefault((n, batch), []).append(measure(llms[n], batch, args.steps, args.prompt_len)["step"])
    for (n, batch), values in steps.items():
        results[n][f"step_ms_b{batch}"] = statistics.median(values)
    return results


def table(results: dict[str, dict[str, float]], batches: list[int], reference: str) -> None:
    speed = [f"b{b} step ms (tok/s)" for b in batches]
    print(f"| KV cache | KV tokens | identical to {reference} | mean first divergence | mean / max abs d logprob | "
          + " | ".join(speed) + " |")
    print("|---" * (5 + len(batches)) + "|")
    for n, r in results.items():
        timing = [f"{r[f'step_ms_b{b}']:.1f} ({1000 * b / r[f'step_ms_b{b}']:.0f})" for b in batches]
        print(f"| {n} | {r['kv_tokens']} | {r['identical']:.0f}% | {r['divergence']:.1f} | "
              f"{r['mean_delta']:.4f} / {r['max_delta']:.4f} | " + " | ".join(timing) + " |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    results = run(args)
    table(results, args.batch, args.formats.split(",")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
