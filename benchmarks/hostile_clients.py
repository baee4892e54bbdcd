"""/health and a running stream while hostile clients send a 10 MB prompt and a 50 MB body.

    fw serve --port 8000 &
    python benchmarks/hostile_clients.py --url http://127.0.0.1:8000

One completion streams --stream-tokens tokens while /health is polled every 50 ms. Once
the stream decodes (its fifth event), two clients send a 10 MB prompt (with a
Content-Length) and a 50 MB body (chunked, no length). The table shows what the hostile
requests got and when, then the slowest /health answer and the largest pause between two
stream events, while the hostile requests were in flight (until 0.5 s after both were
answered) and over the whole run (the prefill left out). The figures are wall-clock
times: on a busy machine the whole-run column shows the machine, not the server.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from urllib.parse import urlsplit


def _send(url: str, head: dict[str, str], chunks) -> tuple[int, float]:
    """POST /v1/completions over a plain socket, sending ``chunks`` until the server
    answers or closes; (status or 0, seconds until the answer)."""
    parts = urlsplit(url)
    start = time.monotonic()
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    with socket.create_connection((parts.hostname, parts.port), timeout=120) as sock:
        sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: {parts.hostname}\r\n{lines}\r\n".encode())
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                break
        try:
            answer = sock.recv(4096)
        except OSError:
            answer = b""
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, time.monotonic() - start


def _chunked(total: int, size: int = 1 << 20):
    head = b'{"prompt": "'
    yield f"{len(head):x}\r\n".encode() + head + b"\r\n"
    piece = b"y" * size
    for _ in range(total // size):
        yield f"{size:x}\r\n".encode() + piece + b"\r\n"
    tail = b'", "max_tokens": 1}'
    yield f"{len(tail):x}\r\n".encode() + tail + b"\r\n0\r\n\r\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--stream-tokens", type=int, default=200)
    parser.add_argument("--prompt-mb", type=float, default=10)
    parser.add_argument("--body-mb", type=float, default=50)
    args = parser.parse_args(argv)

    import httpx

    prompt = json.dumps({"prompt": "hello world " * int(args.prompt_mb * 1e6 / 12), "max_tokens": 1}).encode()
    results: dict[str, object] = {}
    stop = threading.Event()

    events: list[float] = []  # when each stream event arrived
    polls: list[tuple[float, float]] = []  # (sent at, answered after)

    def stream() -> None:
        with httpx.Client(base_url=args.url, timeout=300) as http:
            body = {"prompt": "Write a long story about a robot.", "max_tokens": args.stream_tokens,
                    "ignore_eos": True, "stream": True}
            with http.stream("POST", "/v1/completions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        events.append(time.monotonic())

    def poll() -> None:
        with httpx.Client(base_url=args.url, timeout=300) as http:
            while not stop.is_set():
                start = time.monotonic()
                http.get("/health")
                polls.append((start, time.monotonic() - start))
                time.sleep(0.05)

    def hostile(name: str, head: dict[str, str], chunks) -> None:
        results[name] = _send(args.url, head, chunks)

    streamer, poller = threading.Thread(target=stream), threading.Thread(target=poll)
    streamer.start()
    poller.start()
    deadline = time.monotonic() + 120
    while len(events) < 5 and time.monotonic() < deadline:  # the stream is decoding
        time.sleep(0.01)
    attackers = [
        threading.Thread(target=hostile, args=(f"{args.prompt_mb:g} MB prompt", {
            "Content-Type": "application/json", "Content-Length": str(len(prompt))}, [prompt])),
        threading.Thread(target=hostile, args=(f"{args.body_mb:g} MB body (chunked)", {
            "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            _chunked(int(args.body_mb * 1e6)))),
    ]
    attack = time.monotonic()
    for thread in attackers:
        thread.start()
    for thread in attackers:
        thread.join()
    window = (attack, time.monotonic() + 0.5)  # while the hostile requests were in flight
    streamer.join()
    stop.set()
    poller.join()
    print(f"{'request':<26} {'status':>6} {'answered after':>15}")
    for thread_name in (f"{args.prompt_mb:g} MB prompt", f"{args.body_mb:g} MB body (chunked)"):
        status, seconds = results[thread_name]
        print(f"{thread_name:<26} {status:>6} {seconds:>14.2f}s")
    gaps = [(b, b - a) for a, b in zip(events[2:], events[3:])]  # after the prefill
    during = [gap for end, gap in gaps if window[0] <= end <= window[1] + gap]
    print(f"{'':<26} {'in flight':>10} {'whole run':>10}")
    print(f"{'slowest /health (s)':<26} {max(t for s, t in polls if window[0] <= s <= window[1]):>10.3f} "
          f"{max(t for _, t in polls):>10.3f}")
    print(f"{'largest stream pause (s)':<26} {max(during, default=float('nan')):>10.3f} {max(g for _, g in gaps):>10.3f}")
    print(f"({len(polls)} polls, {len(events)} stream events)")


if __name__ == "__main__":
    main(sys.argv[1:])
