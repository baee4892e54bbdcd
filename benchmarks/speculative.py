"""Speculative decoding against plain decoding, measured in this one run.

    python benchmarks/speculative.py                       # the embedded SmolLM2, every method
    python benchmarks/speculative.py --methods ngram --rounds 3
    python benchmarks/speculative.py --quick               # a smoke run of the same logic

Two workloads, chat-templated, greedy, at concurrency 1 (one request at a time) and at
concurrency 32 (all at once, with ``disable_by_batch_size`` so that speculation stands
aside in big batches):

* grounded: the model is given a passage (prose or code) and asked to repeat it with a
  small edit, as code edits, RAG answers and extraction do; n-gram lookup and suffix
  decoding find the answer in the prompt;
* free writing: short open questions; there is little to look up.

Each method runs on its own engine, built once; the rounds alternate the order of the
engines (this machine is noisy), and each figure is output tokens/s over the round, so a
ratio compares runs made minutes apart at most. ``draft_model`` speculates for the
model in bfloat16 without quantization with the same checkpoint's own 4-bit weights as the
draft, so its baseline is that dense model without speculation (``none-dense``).

Goals (issue 23): ngram >= 1.8x on grounded at concurrency 1, >= 0.95x on free writing,
and >= 0.95x at concurrency 32 on both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

PASSAGES = [
    ("The river rose three feet overnight, flooding the lower fields and the road to the mill. By morning the "
     "farmers had moved their animals to the ridge, and the miller stood at his door watching the water carry "
     "branches, fence posts and a blue wooden boat past the wheel."),
    ("def moving_average(values, window):\n    if window <= 0:\n        raise ValueError('window must be positive')\n"
     "    totals = []\n    running = 0\n    for index, value in enumerate(values):\n        running += value\n"
     "        if index >= window:\n            running -= values[index - window]\n"
     "        totals.append(running / min(index + 1, window))\n    return totals\n"),
    ("Our office will be closed on Monday for the holiday. Orders placed over the weekend will ship on Tuesday, "
     "and support tickets will be answered in the order they arrived. Thank you for your patience, and we wish "
     "you a restful long weekend."),
    ("class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n"
     "        self.items.append(item)\n\n    def pop(self):\n        if not self.items:\n"
     "            raise IndexError('pop from an empty stack')\n        return self.items.pop()\n"),
]
EDITS = ["Repeat the following text exactly, changing nothing.",
         "Rewrite the following code, renaming the variable `running` to `total`; keep everything else the same.",
         "Repeat the following notice word for word.",
         "Copy the following code exactly, then stop."]
QUESTIONS = ["Write a short story about a lighthouse keeper.", "What are three good habits for learning a language?",
             "Describe a walk through a forest in autumn.", "Why do people enjoy music?"]

METHODS = {
    "ngram": {"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4, "prompt_lookup_min": 2},
    "suffix": {"method": "suffix", "num_speculative_tokens": 5},
    "draft_model": {"method": "draft_model", "num_speculative_tokens": 3},
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a model folder or .gguf file (default: the embedded SmolLM2)")
    parser.add_argument("--methods", default="ngram,suffix,draft_model", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--disable-by-batch-size", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="one round, short answers, concurrency 1 only")
    parser.add_argument("--output-json", help="also write the figures here")
    return parser.parse_args(argv)


def chat_prompts(llm, workload: str) -> list[str]:
    tokenizer = llm.get_tokenizer()
    if workload == "grounded":
        messages = [f"{edit}\n\n{passage}" for edit, passage in zip(EDITS, PASSAGES)]
    else:
        messages = QUESTIONS
    return [tokenizer.apply_chat_template([{"role": "user", "content": m}], tokenize=False,
                                          add_generation_prompt=True) for m in messages]


def output_rate(llm, prompts: list[str], concurrency: int, max_tokens: int) -> float:
    """Output tokens/s: one request at a time (1), or ``concurrency`` copies at once."""
    from fw import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0)
    start = time.perf_counter()
    tokens = 0
    if concurrency == 1:
        for prompt in prompts:
            tokens += len(llm.generate(prompt, params, use_tqdm=False)[0].outputs[0].token_ids)
    else:
        batch = (prompts * concurrency)[:concurrency]
        tokens = sum(len(o.outputs[0].token_ids) for o in llm.generate(batch, params, use_tqdm=False))
    return tokens / (time.perf_counter() - start)


def build(model: str | None, methods: list[str], batch_limit: int) -> dict:
    from fw import LLM
    from fw.model_loader.select import resolve_model_path

    path = str(resolve_model_path(model))
    engines = {"none": LLM(path)}
    for method in methods:
        settings = {**METHODS[method], "disable_by_batch_size": batch_limit}
        if method == "draft_model":
            settings["model"] = path  # the checkpoint's own 4-bit weights draft for its dense bf16 self
            engines["none-dense"] = LLM(path, quantization="none")
            engines[method] = LLM(path, quantization="none", speculative_config=settings)
        else:
            engines[method] = LLM(path, speculative_config=settings)
    return engines


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    rounds, max_tokens = (1, 48) if args.quick else (args.rounds, args.max_tokens)
    concurrencies = [1] if args.quick else [1, 32]
    engines = build(args.model, methods, args.disable_by_batch_size)
    names = list(engines)
    workloads = {w: chat_prompts(engines["none"], w) for w in ("grounded", "free")}
    for llm in engines.values():  # warm every engine on a short request
        output_rate(llm, workloads["free"][:1], 1, 4)
    rates: dict = {}
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for concurrency in concurrencies:
            for workload, prompts in workloads.items():
                for name in order:
                    rate = output_rate(engines[name], prompts, concurrency, max_tokens)
                    rates.setdefault((workload, concurrency, name), []).append(rate)
                    print(f"round {round_index + 1}: {workload:8} c={concurrency:<2} {name:12} {rate:7.1f} tok/s",
                          file=sys.stderr)
    report(engines, methods, rates, concurrencies, rounds, args, argv)


def report(engines, methods, rates, concurrencies, rounds, args, argv) -> None:
    rows, figures = [], {}
    for concurrency in concurrencies:
        for workload in ("grounded", "free"):
            for method in methods:
                baseline = "none-dense" if method == "draft_model" else "none"
                pairs = list(zip(rates[(workload, concurrency, method)], rates[(workload, concurrency, baseline)]))
                ratio = statistics.median(a / b for a, b in pairs)
                stats = engines[method].engine.stats()
                acceptance = stats.spec_num_accepted_tokens / max(stats.spec_num_draft_tokens, 1)
                figures[f"{workload}/c{concurrency}/{method}"] = {
                    "ratio": ratio, "method_tok_s": [a for a, _ in pairs], "baseline_tok_s": [b for _, b in pairs]}
                rows.append(f"| {workload} | {concurrency} | {method} | "
                            f"{statistics.median(b for _, b in pairs):.1f} | {statistics.median(a for a, _ in pairs):.1f} | "
                            f"**{ratio:.2f}x** | {100 * acceptance:.0f}% |")
    print("| workload | concurrency | method | baseline tok/s | with speculation tok/s | ratio (median of rounds) "
          "| acceptance (whole run) |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n`python benchmarks/speculative.py {' '.join(argv)}`".rstrip() + f", {rounds} round(s) alternated")
    if args.output_json:
        with open(args.output_json, "w") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main(sys.argv[1:])
