"""Start-up, side by side: how long `fw serve` and llama.cpp's `llama-server` take to
answer GET /health with 200 on the same GGUF file, alternated round by round.

    python benchmarks/startup.py --llama-server /path/to/llama-server          # warm caches
    python benchmarks/startup.py --llama-server ... --cold                      # fw's first-ever start
    python benchmarks/startup.py --llama-server ... --cold --keep-kernels       # ... after `make setup`
    python benchmarks/startup.py --rounds 5 --model /path/to/model.gguf

Each round starts fw, then llama-server (so both meet the same machine load), from a
fresh process to the first 200 on /health. Warm: fw's caches ($FW_CACHE_DIR: kernels,
converted tokenizer, prepared weights) are filled by an unmeasured start first. Cold:
each fw start gets an empty $FW_CACHE_DIR (its kernels compile, the tokenizer converts,
the weights are prepared), as on a machine that never ran fw; with --keep-kernels the
compiled CPU kernels are there already, as `make setup` leaves them. The OS file cache is
warm either way. fw's phases come from its start-up log: model load, KV cache, warm-up, and
"other" (imports, tokenizer, server start). "cpu s" is the CPU time the server process
and its children used until ready: on a busy machine it shows the work, where the wall
time also shows the wait. Without --llama-server (or $LLAMA_SERVER) only fw runs.
"other" is everything outside those phases: imports, the tokenizer, starting the engine
core process, the HTTP server.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import free_port  # noqa: E402

PHASES = {"load": r"loaded \S+ \(.*\) in ([\d.]+)s", "kv": r"KV cache \(.*\): .* \(sized in ([\d.]+)s\)",
          "warm-up": r"warm-up done in ([\d.]+)s", "engine": r"engine ready in ([\d.]+) s"}


def cpu_seconds(pid: int) -> float:
    """User + system time of ``pid`` and every process under it (fw's engine cores, the
    kernel compilers; finished ones that were waited for included), in seconds."""
    stats, children = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            total += sum(int(v) for v in stats[current][11:15])
        todo.extend(children.get(current, []))
    return total / os.sysconf("SC_CLK_TCK")


def time_to_ready(command: list[str], port: int, env: dict[str, str], log: Path, timeout: float) -> tuple[float, float]:
    """(seconds from spawn to the first 200 on /health, CPU seconds by then); the server
    is stopped, by its own id, before returning."""
    with log.open("w") as sink:
        start = time.perf_counter()
        server = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {server.returncode}:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - start, cpu_seconds(server.pid)
            except OSError:
                pass
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"{command[0]} was not ready in {timeout:.0f} s:\n{log.read_text()[-2000:]}")
            time.sleep(0.02)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def fw_phases(log: str) -> dict[str, float]:
    """Seconds per phase, from fw's start-up log lines."""
    return {name: float(m.group(1)) for name, pattern in PHASES.items() if (m := re.search(pattern, log))}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", help="a .gguf file (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--llama-server", default=os.environ.get("LLAMA_SERVER"), help="llama-server's path")
    parser.add_argument("--cold", action="store_true", help="fw's first-ever start: an empty $FW_CACHE_DIR each round")
    parser.add_argument("--keep-kernels", action="store_true", help="with --cold: the CPU kernels compiled already")
    parser.add_argument("--fw-arg", action="append", default=[], help="an extra `fw serve` argument (repeatable)")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args(argv)

    if args.model is None:
        from fw.model_loader.default_model import default_model_path

        args.model = str(default_model_path())
    workdir = Path(tempfile.mkdtemp(prefix="fw-startup-"))
    fw = [sys.executable, "-m", "fw.cli.main", "serve", args.model, "--disable-log-stats",
          "--no-use-tqdm-on-load", *args.fw_arg]
    llama = [args.llama_server, "-m", args.model] if args.llama_server else None
    env = {**os.environ, "FW_CACHE_DIR": str(workdir / "fw-cache")}
    try:
        if not args.cold or args.keep_kernels:  # fill fw's caches, unmeasured
            port = free_port()
            time_to_ready([*fw, "--port", str(port)], port, env, workdir / "fill.log", args.timeout)
        state = "warm caches"
        if args.cold:
            state = "first-ever (empty caches" + (", kernels compiled)" if args.keep_kernels else ")")
        print(f"model: {args.model}; fw {state}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
        print("| round | fw ready s | fw cpu s | load s | kv s | warm-up s | other s | llama-server ready s "
              "| llama-server cpu s | fw / llama-server |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        fw_times, llama_times = [], []
        for round_ in range(1, args.rounds + 1):
            round_env = env
            if args.cold:
                round_env = {**env, "FW_CACHE_DIR": str(workdir / f"cold-{round_}")}
                if args.keep_kernels:
                    shutil.copytree(workdir / "fw-cache" / "kernels", workdir / f"cold-{round_}" / "kernels")
            port = free_port()
            log = workdir / f"fw-{round_}.log"
            ready, cpu = time_to_ready([*fw, "--port", str(port)], port, round_env, log, args.timeout)
            phases = fw_phases(log.read_text())
            fw_times.append(ready)
            other = ready - phases.get("load", 0) - phases.get("kv", 0) - phases.get("warm-up", 0)
            cells = [f"{ready:.2f}", f"{cpu:.2f}"] + [f"{phases[k]:.2f}" if k in phases else "-"
                                                      for k in ("load", "kv", "warm-up")] + [f"{other:.2f}"]
            if llama:
                port = free_port()
                llama_ready, llama_cpu = time_to_ready([*llama, "--port", str(port)], port, env,
                                                       workdir / f"llama-{round_}.log", args.timeout)
                llama_times.append(llama_ready)
                cells += [f"{llama_ready:.2f}", f"{llama_cpu:.2f}", f"{ready / llama_ready:.2f}x"]
            else:
                cells += ["-", "-", "-"]
            print(f"| {round_} | " + " | ".join(cells) + " |", flush=True)
        summary = f"median: fw {statistics.median(fw_times):.2f} s"
        if llama_times:
            summary += (f", llama-server {statistics.median(llama_times):.2f} s, "
                        f"fw / llama-server {statistics.median(fw_times) / statistics.median(llama_times):.2f}x")
        print(summary)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
