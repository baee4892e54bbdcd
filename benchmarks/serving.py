"""`fw serve` under load, optionally side by side with llama.cpp's `llama-server`.

    python benchmarks/serving.py                                  # fw alone
    python benchmarks/serving.py --llama-server /path/to/llama-server
    python benchmarks/serving.py --baseline /path/to/other/fw/checkout --rounds 3
    python benchmarks/serving.py --fw-args "-dp 2" --baseline-args "" --rounds 3 --concurrency 32
    python benchmarks/serving.py --workload shared-prefix --fw-args "-dp 2" \
        --baseline-args "-dp 2 --data-parallel-routing queue" --rounds 3
    python benchmarks/serving.py --quick                          # a short smoke run
    python benchmarks/serving.py --baseline ../other --settle 10  # servers that idled 10 s after start

Both servers serve the embedded SmolLM2-135M-Instruct (the same Q4_1 GGUF file) on
loopback with 2 threads; `fw bench serve` drives each at concurrency 1, 8 and 32 with
~64-token random prompts and 128 output tokens (end-of-sequence ignored), and the table
compares output tokens/s, time to first token and inter-token latency. Each server runs
alone while it is measured. ``--baseline`` measures another fw checkout (its source roots
on PYTHONPATH, this virtualenv's packages) beside this one, ``--baseline-args`` this
checkout (or that one) with other options; ``--rounds`` alternates the servers that many
times, since this machine is noisy. ``--workload shared-prefix`` sends prompts that start
with one of 8 shared 512-token prefixes (system prompts) and a 64-token question each,
for 64 output tokens: what prefix-aware data parallel routing is for.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

FULL = {1: 8, 8: 32, 32: 64}  # concurrency -> prompts
QUICK = {1: 2, 8: 8}
INPUT_LEN, OUTPUT_LEN = 64, 128


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 900) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} did not become healthy in {timeout:.0f}s")


def start_fw(port: int, log, source: Path | None = None, extra: list[str] = ()) -> subprocess.Popen:
    """`fw serve` from this checkout, or from the fw checkout at ``source``."""
    command = [sys.executable, "-m", "fw.cli.main", "serve", "--port", str(port), "--max-model-len", "2048",
               "--disable-log-stats", "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning", *extra]
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(source / root) for root in ("core", "kernels", "plugins"))
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def start_llama(binary: str, gguf: Path, port: int, log) -> subprocess.Popen:
    command = [binary, "-m", str(gguf), "--port", str(port), "--host", "127.0.0.1", "-np", "32", "-cb",
               "-t", "2", "-c", str(32 * 256)]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


WORKLOADS = {
    "random": ["--dataset-name", "random", "--random-input-len", str(INPUT_LEN),
               "--random-output-len", str(OUTPUT_LEN)],
    "shared-prefix": ["--dataset-name", "prefix_repetition", "--prefix-repetition-prefix-len", "512",
                      "--prefix-repetition-suffix-len", "64", "--prefix-repetition-num-prefixes", "8",
                      "--prefix-repetition-output-len", "64"],
}


def bench(url: str, concurrency: int, prompts: int, tokenizer: Path, out_dir: Path, label: str,
          workload: list[str] = WORKLOADS["random"]) -> dict:
    filename = f"{label}-c{concurrency}.json"
    command = [sys.executable, "-m", "fw.cli.main", "bench", "serve", "--base-url", url, "--model",
               "SmolLM2-135M-Instruct", "--tokenizer", str(tokenizer), *workload,
               "--num-prompts", str(prompts), "--max-concurrency", str(concurrency), "--ignore-eos",
               "--disable-tqdm", "--save-result", "--result-dir", str(out_dir), "--result-filename", filename]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    result = json.loads((out_dir / filename).read_text())
    if result["failed"]:  # a figure over failed requests would compare nothing
        raise SystemExit(f"{label}: {result['failed']} of {prompts} requests failed at concurrency {concurrency}; "
                         f"the first: {next(e for e in result['errors'] if e)}")
    return result


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (engine cores included), SIGKILL after 30 s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def measure(label: str, start, plan: dict[int, int], tokenizer: Path, out_dir: Path,
            workload: list[str] = WORKLOADS["random"], settle: float = 0.0) -> dict[int, dict]:
    port = free_port()
    with open(out_dir / f"{label}.log", "w") as log:
        process = start(port, log)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process)
            time.sleep(settle)
            bench(url, 1, 1, tokenizer, out_dir, f"{label}-warmup")
            return {c: bench(url, c, n, tokenizer, out_dir, label, workload) for c, n in plan.items()}
        finally:
            stop(process)


def row(label: str, concurrency: int, result: dict) -> str:
    return (f"| {label} | {concurrency} | {result['output_throughput']:.1f} | {result['mean_ttft_ms']:.0f} | "
            f"{result['median_ttft_ms']:.0f} | {result['median_itl_ms']:.1f} | {result['median_tpot_ms']:.1f} |")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-server", help="a llama-server binary to measure beside fw")
    parser.add_argument("--baseline", type=Path, help="another fw checkout to measure beside this one")
    parser.add_argument("--baseline-args", help="`fw serve` options of the baseline server (with no --baseline: "
                                                "this checkout's, run with these options)")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="random")
    parser.add_argument("--rounds", type=int, default=1, help="measure each server this many times, alternated")
    parser.add_argument("--concurrency", type=int, action="append",
                        help="only these concurrencies (repeatable; default 1, 8 and 32)")
    parser.add_argument("--fw-args", default="", help="extra `fw serve` options for this checkout's server")
    parser.add_argument("--quick", action="store_true", help="fewer prompts and concurrencies")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds each server idles after it is ready, before the load (one started a while ago)")
    parser.add_argument("--output-json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    from fw.model_loader.default_model import default_model_path

    gguf = default_model_path()
    plan = QUICK if args.quick else FULL
    if args.concurrency:
        plan = {c: FULL.get(c, 2 * c) for c in args.concurrency}
    out_dir = Path(tempfile.mkdtemp(prefix="fw-serving-"))
    servers = {"fw": lambda port, log: start_fw(port, log, extra=shlex.split(args.fw_args))}
    if args.baseline or args.baseline_args is not None:
        source = args.baseline.resolve() if args.baseline else None
        extra = shlex.split(args.baseline_args or "")
        servers["baseline"] = lambda port, log: start_fw(port, log, source=source, extra=extra)
    if args.llama_server:
        servers["llama.cpp"] = lambda port, log: start_llama(args.llama_server, gguf, port, log)
    results = {}
    for round_ in range(1, args.rounds + 1):
        for name, start in servers.items():
            label = name if args.rounds == 1 else f"{name} #{round_}"
            results[label] = measure(label.replace(" #", "-"), start, plan, gguf, out_dir, WORKLOADS[args.workload],
                                     args.settle)
    print(f"{gguf.name}, {INPUT_LEN}-token prompts, {OUTPUT_LEN} output tokens, ignore_eos\n")
    print("| server | concurrency | output tok/s | mean TTFT ms | median TTFT ms | median ITL ms | median TPOT ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for concurrency in plan:
        for label in results:
            print(row(label, concurrency, results[label][concurrency]))
    for other in [name for name in servers if name != "fw"]:
        print(f"\n| round | concurrency | fw / {other} output tok/s | fw / {other} median ITL |")
        print("|---:|---:|---:|---:|")
        for round_ in range(1, args.rounds + 1):
            suffix = "" if args.rounds == 1 else f" #{round_}"
            ours, theirs = results[f"fw{suffix}"], results[f"{other}{suffix}"]
            for concurrency in plan:
                ratio = ours[concurrency]["output_throughput"] / theirs[concurrency]["output_throughput"]
                itl = ours[concurrency]["median_itl_ms"] / theirs[concurrency]["median_itl_ms"]
                print(f"| {round_} | {concurrency} | {ratio:.2f}x | {itl:.2f}x |")
    print(f"\ncommand: python benchmarks/serving.py {shlex.join(argv)}")
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    # a SIGTERM unwinds through measure()'s finally, so the server it started is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    main(sys.argv[1:])
