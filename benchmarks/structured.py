"""The cost of structured decoding: 32 concurrent requests under a JSON-schema constraint
against the same 32 requests unconstrained, on the embedded SmolLM2.

    python benchmarks/structured.py            # 32 requests x 128 tokens
    python benchmarks/structured.py --quick

The schema (an array of at least 200 integers) keeps every constrained request going
for the whole token budget, so both runs produce the same number of tokens and the
ratio of their output tokens/s is the overhead: the per-step token bitmasks, applied
inside the batched sampler. Grammar compilation happens once before timing (it is
cached, and runs off the engine loop when serving).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

SCHEMA = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 999}, "minItems": 200}


def run(llm, prompts, params) -> float:
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    return sum(len(o.outputs[0].token_ids) for o in outputs) / elapsed


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from fw import LLM, SamplingParams
    from fw.structured.params import StructuredOutputsParams

    requests, tokens = (8, 32) if args.quick else (32, 128)
    llm = LLM(max_model_len=1024)
    tokenizer = llm.get_tokenizer()
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": f"List {n} numbers as a JSON array."}],
                                             add_generation_prompt=True, tokenize=False) for n in range(requests)]
    free = SamplingParams(max_tokens=tokens, min_tokens=tokens, temperature=0.0)
    constrained = SamplingParams(max_tokens=tokens, min_tokens=tokens, temperature=0.0,
                                 structured_outputs=StructuredOutputsParams(json=SCHEMA, disable_any_whitespace=True))
    run(llm, prompts[:2], constrained)  # compile and cache the grammar, warm both paths
    figures = {"unconstrained": [], "json schema": []}
    for _ in range(2):  # interleaved, so drift on a noisy machine hits both alike
        figures["unconstrained"].append(run(llm, prompts, free))
        figures["json schema"].append(run(llm, prompts, constrained))
    best = {name: max(values) for name, values in figures.items()}
    print(f"{requests} concurrent requests x {tokens} output tokens, SmolLM2-135M-Instruct, bf16\n")
    print("| decoding | output tok/s |")
    print("|---|---:|")
    for name, value in best.items():
        print(f"| {name} | {value:.1f} |")
    loss = 1 - best["json schema"] / best["unconstrained"]
    print(f"\nthroughput loss under the constraint: {loss:.1%} (target: under 10%)")
    print(f"command: python benchmarks/structured.py {shlex.join(argv)}")


if __name__ == "__main__":
    main(sys.argv[1:])
