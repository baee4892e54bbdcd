"""The int8 dot-product peak of this CPU: ``vpdpbusd`` in a loop over 1 to 16 independent
accumulators, on one and two threads, in GOP/s (one 512-bit vpdpbusd = 128 operations).

    python benchmarks/int8_peak.py
    python benchmarks/int8_peak.py --threads 1 --threads 2 --threads 4 --rounds 5

A loop over one or two accumulators waits on the instruction's latency and shows about
half the peak; from about 8 the loop is bound by its throughput, which is the ceiling the
int8 GEMMs are measured against (``benchmarks/gemm_peak.py``, ``fw bench``). Each figure
is the best of ``--rounds`` runs, the settings alternating so that a busy moment on a
shared machine does not fall on one of them only.
"""

from __future__ import annotations

import argparse
import sys


def measure(threads: list[int], accumulators: list[int], rounds: int, seconds: float) -> dict:
    """{(accumulators, threads): best GOP/s}."""
    from fw_kernels.cpu import roofline

    best: dict[tuple[int, int], float] = {}
    for _ in range(rounds):
        for count in accumulators:
            for thread_count in threads:
                figure = roofline.int8_peak(thread_count, count, seconds=seconds, repeats=1)
                best[count, thread_count] = max(best.get((count, thread_count), 0.0), figure)
    return best


def main(argv: list[str]) -> None:
    from fw_kernels.cpu import roofline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, action="append", help="threads at once (repeatable; default 1, 2)")
    parser.add_argument("--accumulators", type=int, action="append", choices=roofline.ACCUMULATORS,
                        help=f"independent accumulators (repeatable; default {', '.join(map(str, roofline.ACCUMULATORS))})")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; each figure is the best")
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one run")
    args = parser.parse_args(argv)
    if not roofline.int8_peak_available():
        sys.exit("the probe needs fw's CPU kernels built with AVX512-VNNI, which this CPU or build lacks")
    threads = args.threads or [1, 2]
    accumulators = args.accumulators or list(roofline.ACCUMULATORS)
    best = measure(threads, accumulators, args.rounds, args.seconds)
    print("| accumulators | " + " | ".join(f"{t} thread{'s' * (t > 1)} GOP/s" for t in threads) + " |")
    print("|---:|" + "---:|" * len(threads))
    for count in accumulators:
        print(f"| {count} | " + " | ".join(f"{best[count, t]:.0f}" for t in threads) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
