"""This machine's limits, measured: the int8 dot-product peak and the memory copy bandwidth.

A kernel's speed means little alone: 500 GOP/s is most of one CPU's int8 peak and a third
of another's. These probes give the ceilings that the GEMMs (GOP/s) and attention (GB/s of
KV cache read) are compared against, in ``benchmarks/int8_peak.py``,
``benchmarks/gemm_peak.py`` and ``fw bench``.

The int8 peak is a loop of ``vpdpbusd`` over enough independent accumulators to hide the
instruction's latency (``peak.c``), timed by each thread's CPU time; the bandwidth is a large tensor copy (bytes read plus
bytes written per second), the traffic pattern of a step that streams weights or KV blocks
through the cores.
"""

from __future__ import annotations

import ctypes
import functools
import time

from fw_kernels.cpu.build import library

#: vpdpbusd loops built into peak.c, by their number of independent accumulators
ACCUMULATORS = (1, 2, 4, 8, 12, 16)
#: enough accumulators to be bound by the instruction's throughput, not its latency
PEAK_ACCUMULATORS = 12


@functools.cache
def _peak_function():
    lib = library()
    if lib is None:
        return None
    available = lib.fw_int8_peak_available
    available.restype = ctypes.c_int
    if not available():
        return None
    fn = lib.fw_int8_peak
    fn.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p]
    fn.restype = ctypes.c_int64
    return fn


def int8_peak_available() -> bool:
    """Whether the probe is built (it needs AVX512-VNNI)."""
    return _peak_function() is not None


def run_probe(iterations: int, accumulators: int, threads: int) -> tuple[int, list[float]]:
    """One run of the loop: (operations done, each thread's CPU seconds in its loop)."""
    fn = _peak_function()
    if fn is None:
        raise RuntimeError("the int8 peak probe needs fw's CPU kernels built with AVX512-VNNI")
    if accumulators not in ACCUMULATORS:
        raise ValueError(f"accumulators must be one of {ACCUMULATORS}, not {accumulators}")
    seconds = (ctypes.c_double * threads)()
    ops = fn(iterations, accumulators, threads, ctypes.addressof(seconds))
    return ops, [s for s in seconds if s > 0]


def int8_peak(threads: int = 1, accumulators: int = PEAK_ACCUMULATORS, seconds: float = 0.3,
              repeats: int = 3) -> float:
    """GOP/s of ``vpdpbusd`` on ``threads`` threads at once: the sum of each thread's
    operations over the CPU time it ran (the best of ``repeats`` runs of about ``seconds``).

    CPU time, not wall time: on a shared machine a thread also waits for a core, which
    would read as a lower peak; the threads run at once, so their rates add up."""
    iterations = 1 << 14
    while True:  # calibrate: double until one run takes a tenth of the target
        _, spent = run_probe(iterations, accumulators, threads)
        if max(spent) >= seconds / 10:
            break
        iterations *= 2
    iterations *= 10
    best = 0.0
    for _ in range(repeats):
        ops, spent = run_probe(iterations, accumulators, threads)
        per_thread = ops / len(spent)
        best = max(best, sum(per_thread / s for s in spent) / 1e9)
    return best


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """GB/s moved (read plus written) by copying a ``megabytes`` tensor on torch's threads:
    the best of ``repeats`` copies, each far larger than the caches."""
    import torch

    source = torch.ones(megabytes << 18, dtype=torch.float32)
    target = torch.empty_like(source)
    target.copy_(source)  # fault the pages in first
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        target.copy_(source)
        best = max(best, 2 * source.nbytes / (time.perf_counter() - start) / 1e9)
    return best
