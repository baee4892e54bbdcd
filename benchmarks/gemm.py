"""fw's two CPU GEMMs for batches side by side: the bf16 one (dense.c) and the W8A8 int8
one (igemm.c), at SmolLM2-135M's four projection shapes.

    python benchmarks/gemm.py                  # rows 8, 32 and 2048
    python benchmarks/gemm.py --rows 32 --layers 1

Each shape gets ``--layers`` distinct random weight matrices (30 by default, so weights
stream from memory as in a real step, not from cache) and is timed as the best of 7
rounds, both kernels alternating in the same process. Figures are GFLOP/s (2 * M * N * K
per product); the ratio is bf16 time over int8 time. Calls go through ctypes, which
costs some microseconds per call: small shapes read low for both.
"""

from __future__ import annotations

import argparse
import sys
import time

#: SmolLM2-135M: merged q/k/v, output, merged gate/up, down
SHAPES = [(960, 576), (576, 576), (3072, 576), (576, 1536)]


def best_time(fn, calls: int) -> float:
    fn()
    rounds = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls)
    return min(rounds)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="input rows M (repeatable; default 8, 32, 2048)")
    parser.add_argument("--layers", type=int, default=30, help="distinct weight matrices per shape")
    args = parser.parse_args(argv)

    import torch

    from fw_kernels import cpu
    from fw_kernels.cpu import packing

    if not (cpu.dense_available() and cpu.int8_gemm_available()):
        sys.exit("this CPU lacks AVX512-BF16 or AVX512-VNNI: fw's GEMMs for batches are not built here")
    torch.manual_seed(0)
    print("| rows | N x K | bf16 GFLOP/s | int8 GOP/s | bf16 / int8 time |")
    print("|---:|---|---:|---:|---:|")
    for rows in args.rows or [8, 32, 2048]:
        total_bf16 = total_int8 = 0.0
        for n, k in SHAPES:
            weights = [torch.randn(n, k).bfloat16() for _ in range(args.layers)]
            dense = [packing.pack_bf16_panels(w) for w in weights]
            int8 = [packing.pack_int8_panels(w) for w in weights]
            x = torch.randn(rows, k).bfloat16()
            calls = max(1, 1024 // rows)
            t_bf16 = best_time(lambda: [cpu.dense_gemm(x, p, None, n) for p in dense], calls)
            t_int8 = best_time(lambda: [cpu.int8_gemm(x, *p, None, n) for p in int8], calls)
            flops = 2 * rows * n * k * args.layers
            total_bf16, total_int8 = total_bf16 + t_bf16, total_int8 + t_int8
            print(f"| {rows} | {n} x {k} | {flops / t_bf16 / 1e9:.0f} | {flops / t_int8 / 1e9:.0f} | "
                  f"{t_bf16 / t_int8:.2f}x |")
        print(f"| {rows} | all four, {args.layers} layers | {total_bf16 * 1e3:.1f} ms | {total_int8 * 1e3:.1f} ms | "
              f"{total_bf16 / total_int8:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1:])
