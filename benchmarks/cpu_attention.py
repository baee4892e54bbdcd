"""fw's CPU decode-attention kernel at SmolLM2-135M's shape, as a decode step meets it.

    python benchmarks/cpu_attention.py                    # 32 sequences, contexts 128 and 512
    python benchmarks/cpu_attention.py --context 256 --seqs 8
    python benchmarks/cpu_attention.py --kv auto --kv int8 --kv fp8   # quantized caches too

A step runs the kernel once per layer, each over its own cache, so the rows come from
memory, not from cache: ``--layers`` (30) caches on huge pages, as the engine allocates
them, four times larger than the sequences need, with each sequence's blocks drawn at
random from them. The "from cache" column runs one layer's call ``--layers`` times over
the same rows, which leaves only the arithmetic. Times are the best of 7 rounds; GB/s is
the K and V bytes a step must read, over its time (a quantized cache: one byte per
element and a 4-byte scale per row).
"""

from __future__ import annotations

import argparse
import sys
import time


def best_time(fn) -> float:
    fn()
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        fn()
        rounds.append(time.perf_counter() - start)
    return min(rounds)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--context", type=int, action="append", help="tokens per sequence (repeatable; default 128, 512)")
    parser.add_argument("--seqs", type=int, default=32, help="sequences in the step")
    parser.add_argument("--layers", type=int, default=30, help="layers, each with its own cache")
    parser.add_argument("--kv", action="append", choices=["auto", "int8", "fp8"],
                        help="cache format (repeatable; default auto: bfloat16)")
    args = parser.parse_args(argv)

    from fw_kernels import cpu

    if not cpu.available():
        sys.exit("fw's CPU kernels could not be built here")
    heads, kv_heads, head_size, block_size = 9, 3, 64, 16  # SmolLM2-135M, fw's default block size
    import torch

    torch.manual_seed(0)
    print("| KV | seqs | context | step ms | GB/s | from cache ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for kv in args.kv or ["auto"]:
        for context in args.context or [128, 512]:
            measure(kv, context, args.seqs, args.layers, heads, kv_heads, head_size, block_size)


def measure(kv: str, context: int, seqs: int, layers: int, heads: int, kv_heads: int, head_size: int,
            block_size: int) -> None:
    import torch

    from fw.engine import huge_pages
    from fw_kernels import cpu, kv_quant

    kind = {"int8": "int8", "fp8": "fp8_e4m3"}.get(kv)
    blocks = seqs * -(-context // block_size)
    caches = []
    for _ in range(layers):
        if kind is None:
            cache = huge_pages.zeros(2, 4 * blocks, block_size, kv_heads, head_size, dtype=torch.bfloat16)
            caches.append(cache.normal_())
            continue
        cache = huge_pages.zeros(2, 4 * blocks, kv_heads, block_size, head_size + 4,
                                 dtype=torch.int8 if kind == "int8" else torch.uint8)
        rows = torch.randn(4 * blocks * block_size, kv_heads, head_size)
        kv_quant.write_kv(rows, rows, cache, torch.arange(rows.shape[0]), kind)
        caches.append(cache)
    table = torch.randperm(4 * blocks)[:blocks].to(torch.int32).view(seqs, -1)
    query = torch.randn(seqs, heads, head_size, dtype=torch.bfloat16)
    lens = torch.full((seqs,), context, dtype=torch.int32)

    def attend(cache):
        if kind is None:
            cpu.paged_decode(query, cache[0], cache[1], table, lens, head_size ** -0.5, max_len=context)
        else:
            cpu.paged_decode_quant(query, cache, 1 if kind == "int8" else 2, table, lens, head_size ** -0.5,
                                   max_len=context)

    step = best_time(lambda: [attend(c) for c in caches])
    cached = best_time(lambda: [attend(caches[0]) for _ in caches])
    row = head_size * 2 if kind is None else head_size + 4
    read = layers * seqs * context * kv_heads * row * 2
    print(f"| {kv} | {seqs} | {context} | {step * 1e3:.2f} | {read / step / 1e9:.1f} | {cached * 1e3:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
