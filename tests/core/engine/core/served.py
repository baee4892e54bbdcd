"""`fw serve` as a real process tree, for the engine-process tests.

``Served`` starts the server in its own session, waits until it is healthy, and at the
end stops it and every process it started (engine cores, Ray), each by its own id, even
when the test failed; ``leftovers()`` says which of them outlived that.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from fw_builtins.commands.client import SSELines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    def __init__(self, model: Path, *args: str, log: Path, env: dict[str, str] | None = None,
                 ready_timeout: float = 240.0, wait: bool = True, dtype: str = "float32"):
        """``wait``: until /health answers 200 (False for a headless node, which has no API);
        ``dtype``: the --dtype to serve in ("auto": the model's default)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        command = [sys.executable, "-m", "fw.cli.main", "serve", str(model), "--port", str(self.port),
                   "--dtype", dtype, "--kv-cache-memory-bytes", "32M", "--disable-log-stats",
                   "--uvicorn-log-level", "warning", *args]
        self._log = open(log, "w")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, **(env or {})})
        #: every process of the tree seen so far (engine cores start after the server)
        self.seen: dict[int, psutil.Process] = {}
        if wait:
            self._wait_healthy(ready_timeout)

    def _track(self) -> None:
        try:
            root = psutil.Process(self.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                self.seen.setdefault(proc.pid, proc)
        except psutil.NoSuchProcess:
            pass

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._track()
            if self.process.poll() is not None:
                raise RuntimeError(f"fw serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    self._track()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"fw serve was not healthy within {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def titled(self, prefix: str) -> dict[str, psutil.Process]:
        """Processes of the tree by their title (fw::engine_core, fw::engine_core_dp1,
        fw::api_server_0, ...)."""
        self._track()
        found = {}
        for proc in self.seen.values():
            try:
                title = " ".join(proc.cmdline()).strip()
            except psutil.Error:
                continue
            if title.startswith(prefix):
                found[title] = proc
        return found

    def engine_cores(self) -> dict[str, psutil.Process]:
        return self.titled("fw::engine_core")

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def metric(self, name: str, **labels: str) -> float | None:
        for line in self.metrics().splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return None

    def complete(self, prompt: str, **body) -> dict:
        response = httpx.post(f"{self.url}/v1/completions", json={"prompt": prompt, **body}, timeout=120)
        return {"status": response.status_code, **response.json()}

    def stream_events(self, prompt: str, started=None, **body) -> list:
        """A streamed completion's events (the JSON of each, or "[DONE]"); ``started`` (a
        threading.Event) is set once the first token has arrived."""
        events = []
        with httpx.stream("POST", f"{self.url}/v1/completions", json={"prompt": prompt, "stream": True, **body},
                          timeout=120) as response:
            for line in SSELines.of(response.iter_bytes()):  # not iter_lines: it cuts at U+2028
                if line.startswith("data: "):
                    data = line[6:]
                    events.append(data if data == "[DONE]" else json.loads(data))
                    if started is not None and len(events) >= 2:
                        started.set()
        return events

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _running(self) -> list[psutil.Process]:
        alive = []
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                pass
        return alive

    def stop(self, grace: float = 20.0) -> None:
        """Stop the server (SIGTERM) and wait ``grace`` seconds for its whole tree to end on
        its own; what is still running then is recorded in ``outlived`` and killed, by pid."""
        self._track()
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.wait_exit(grace + 15)
        deadline = time.monotonic() + grace
        while self._running() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.outlived = [f"{p.pid} {' '.join(p.cmdline())[:80]}" for p in self._running()]
        for proc in self._running():
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(self._running(), timeout=15)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()

    def leftovers(self) -> list[int]:
        """Processes of the tree still running now."""
        return [p.pid for p in self._running()]
