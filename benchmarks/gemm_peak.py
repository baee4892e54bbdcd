"""fw's GEMMs against this CPU's int8 peak: GOP/s for each projection shape of the
embedded model (SmolLM2-135M) at 1, 8, 32 and 128 rows, in the layout the default int4
method runs at that row count, beside the measured ``vpdpbusd`` peak on as many threads.

    python benchmarks/gemm_peak.py
    python benchmarks/gemm_peak.py --rows 32 --layers 4
    python benchmarks/gemm_peak.py --threads 1   # per core, by CPU time (a busy machine)
    python benchmarks/gemm_peak.py --threads 1 --baseline ../main --rounds 3

Each shape gets ``--layers`` distinct random weight matrices (30 by default, so that
weights stream from memory as in a real step) and is timed as the fastest of the calls made in ``--seconds``.
Operations are 2 * rows * N * K per product, whatever the layout computes them with.
Calls go through ctypes, which costs some microseconds each: one-row figures read low.
``--baseline PATH`` measures another fw checkout the same way (this script with that
checkout's source roots, in its own process), alternating ``--rounds`` times, and prints
the medians of both, their ratio and each against the peak measured once here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkouts import alternate  # noqa: E402

#: SmolLM2-135M: merged q/k/v, output, merged gate/up, down, and the LM head
SHAPES = [("qkv", 960, 576), ("o", 576, 576), ("gate_up", 3072, 576), ("down", 576, 1536),
          ("lm_head", 49152, 576)]


def best_time(fn, budget: float, clock=time.perf_counter) -> float:
    """The fastest of repeated calls over about ``budget`` seconds (at least 3 calls)."""
    fn()
    best, spent, calls = float("inf"), 0.0, 0
    while calls < 3 or spent < budget:
        start = clock()
        fn()
        elapsed = clock() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return best


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="input rows (repeatable; default 1, 8, 32, 128)")
    parser.add_argument("--layers", type=int, default=30, help="distinct weight matrices per shape (LM head: 1)")
    parser.add_argument("--peak", type=float, help="the int8 peak in GOP/s (default: measured now)")
    parser.add_argument("--seconds", type=float, default=0.5, help="time spent on each shape and row count")
    parser.add_argument("--threads", type=int, help="threads for the kernels and the probe (default: torch's); "
                        "with 1, both are timed by the thread's CPU time, which a shared machine does not distort")
    parser.add_argument("--baseline", type=Path, help="another fw checkout to measure alternately with this one")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --baseline")
    parser.add_argument("--json", action="store_true", help="one JSON object per shape and row count, no peak")
    args = parser.parse_args(argv)
    if args.baseline is not None:
        compare(args, argv)
        return

    import torch

    from fw_builtins.quantization.int4 import Int4WeightOnly
    from fw_kernels import cpu

    if not cpu.available():
        sys.exit("fw's CPU kernels could not be built here")
    if args.threads:
        torch.set_num_threads(args.threads)  # also the OpenMP team of fw's kernels
    threads = torch.get_num_threads()
    clock = time.thread_time if threads == 1 else time.perf_counter
    peak = None if args.json else _peak(args.peak, threads)
    method = Int4WeightOnly()
    torch.manual_seed(0)
    if not args.json:
        print("| rows | shape | N x K | layout | GOP/s | % of peak |")
        print("|---:|---|---|---|---:|---:|")
    for rows in args.rows or [1, 8, 32, 128]:
        for name, n, k in SHAPES:
            layers = 1 if name == "lm_head" else args.layers
            weights = [torch.randn(n, k).mul(0.05).bfloat16() for _ in range(layers)]
            packed = [method.pack_lm_head(w) if name == "lm_head" else method.pack(w) for w in weights]
            x = torch.randn(rows, k).bfloat16()
            seconds = best_time(lambda: [p.matmul(x) for p in packed], args.seconds, clock)
            gops = 2 * rows * n * k * layers / seconds / 1e9
            layout = type(packed[0].layout_for(rows)).__name__
            if args.json:
                print(json.dumps({"rows": rows, "name": name, "layout": layout, "gops": gops}), flush=True)
            else:
                share = f"{100 * gops / peak:.0f} %" if peak else "-"
                print(f"| {rows} | {name} | {n} x {k} | {layout} | {gops:.1f} | {share} |")


def _peak(given: float | None, threads: int) -> float | None:
    """The int8 peak (measured now unless given), printed."""
    from fw_kernels.cpu import roofline

    peak = given or (roofline.int8_peak(threads) if roofline.int8_peak_available() else None)
    print(f"int8 peak on {threads} thread{'s' * (threads > 1)} ({'CPU' if threads == 1 else 'wall'} time): "
          + (f"{peak:.0f} GOP/s" if peak else "unknown (no AVX512-VNNI probe)"))
    return peak


def compare(args: argparse.Namespace, argv: list[str]) -> None:
    """Alternate this checkout and ``--baseline``: the median GOP/s of each, their ratio."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    peak = _peak(args.peak, torch.get_num_threads())
    runs = alternate(__file__, args.baseline, args.rounds, argv)
    print(f"medians of {args.rounds} alternated runs each (ratio: this checkout / the baseline)")
    print("| rows | shape | layout | GOP/s | % of peak | baseline layout | baseline GOP/s | ratio |")
    print("|---:|---|---|---:|---:|---|---:|---:|")
    for index, case in enumerate(runs["this"][0]):
        this = statistics.median(run[index]["gops"] for run in runs["this"])
        base = statistics.median(run[index]["gops"] for run in runs["baseline"])
        share = f"{100 * this / peak:.0f} %" if peak else "-"
        print(f"| {case['rows']} | {case['name']} | {case['layout']} | {this:.1f} | {share} | "
              f"{runs['baseline'][0][index]['layout']} | {base:.1f} | {this / base:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
