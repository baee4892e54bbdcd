"""Running `fw bench serve`: find the model, make the prompts, send them at the chosen
pace, report.

One request goes first on its own, so a wrong endpoint, model or key is reported in one
line before the load starts instead of as a thousand failures.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import click
from tqdm import tqdm

from fw_builtins.commands.bench import metrics
from fw_builtins.commands.bench.datasets import Prompt, load_prompts
from fw_builtins.commands.bench.requests import Result, embedding_body, request_body, send, send_embeddings
from fw_builtins.commands.client import Client, ServerOptions, fail, fatal_errors


class BenchError(Exception):
    """The benchmark cannot go on; the message says why, on one line."""


def run(config: Any) -> None:
    target, dataset, traffic, report = config.target, config.dataset, config.traffic, config.result
    api_key = os.environ.get("OPENAI_API_KEY") or "EMPTY"
    model = target.model
    if model is None:
        with fatal_errors():
            server = ServerOptions(url=f"{target.api_base()}/v1", api_key=api_key)
            model = Client(server).first_model("--model")
    tokenizer = _tokenizer(model, target.tokenizer) if dataset.dataset_name != "custom" else None
    prompts = load_prompts(dataset, tokenizer)
    url = target.api_base() + target.endpoint
    concurrency = traffic.max_concurrency or "unlimited"
    click.echo(f"Benchmarking {model} at {url}: {len(prompts)} prompts, "
               f"request rate {traffic.request_rate:g}/s, concurrency {concurrency}")
    try:
        results, duration = asyncio.run(_benchmark(url, model, prompts, traffic, api_key, dataset.seed))
    except BenchError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; no results")
    embeddings = target.endpoint == "/v1/embeddings"
    if tokenizer is not None and not embeddings:
        _fill_prompt_lengths(results, prompts, tokenizer)
    failures = [r.error for r in results if not r.success]
    if len(failures) == len(results):
        fail(f"all {len(results)} requests failed; the first: {failures[0]}")
    if failures:
        click.echo(f"{len(failures)} requests failed; the first: {failures[0]}", err=True)
    # an embedding has no tokens after the first: its latency is the one figure
    names = ["e2el"] if embeddings else report.metrics()
    figures = metrics.summarize(results, duration, names, report.percentiles())
    click.echo(metrics.format_table(figures, names, report.percentiles(), traffic.max_concurrency))
    if report.save_result:
        path = _save(config, model, len(prompts), figures, results)
        click.echo(f"Results saved to {path}")


def _save(config: Any, model: str, num_prompts: int, figures: dict, results: list[Result]) -> Path:
    target, traffic, report = config.target, config.traffic, config.result
    now = datetime.now()
    name = report.result_filename or metrics.default_filename(
        model, traffic.request_rate, traffic.max_concurrency, now)
    settings = {
        "endpoint": target.endpoint, "model_id": model, "tokenizer_id": target.tokenizer or model,
        "dataset_name": config.dataset.dataset_name, "num_prompts": num_prompts,
        "request_rate": "inf" if math.isinf(traffic.request_rate) else traffic.request_rate,
        "max_concurrency": traffic.max_concurrency, "ignore_eos": traffic.ignore_eos,
        "inputs_per_request": traffic.inputs_per_request,
    }
    return metrics.save(Path(report.result_dir or ".") / name, figures, results, settings, now)

def _tokenizer(model: str, tokenizer: str | None) -> Any:
    """The tokenizer for random and ShareGPT prompts. A server running the embedded default
    model lists it by name, not path, so that name means the embedded model here too."""
    from fw.model_loader.default_model import NAME as DEFAULT_MODEL
    from fw.model_loader.select import load_tokenizer

    source = None if model == DEFAULT_MODEL and not Path(model).exists() else model
    try:
        return load_tokenizer(source, tokenizer)
    except Exception as exc:  # noqa: BLE001 - any failure means the same advice
        fail(f"cannot load a tokenizer for {tokenizer or model!r} ({exc}); "
             "pass --tokenizer with the model's folder or file")


def _fill_prompt_lengths(results: list[Result], prompts: list[Prompt], tokenizer: Any) -> None:
    """Count prompt tokens locally for servers whose streams carry no usage."""
    for result, prompt in zip(results, prompts):
        if result.success and not result.prompt_tokens:
            result.prompt_tokens = len(tokenizer.encode(prompt.text))


async def _benchmark(url: str, model: str, prompts: list[Prompt], traffic: Any, api_key: str,
                     seed: int) -> tuple[list[Result], float]:
    """Send every prompt, paced by the request rate and capped by the concurrency;
    returns the results (in prompt order) and the wall time they took."""
    limit = traffic.max_concurrency
    client = aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=aiohttp.ClientTimeout(total=6 * 3600.0, sock_connect=10.0),
        # A connection per request: servers that answer "keep-alive" and then close
        # (llama.cpp's llama-server) would fail reused connections mid-benchmark, and a
        # POST cannot be safely retried. Connecting over loopback costs microseconds.
        connector=aiohttp.TCPConnector(limit=limit or 0, force_close=True),  # limit 0: none
    )
    embeddings = url.endswith("/embeddings")
    per_request = traffic.inputs_per_request if embeddings else 1
    groups = [prompts[i:i + per_request] for i in range(0, len(prompts), per_request)]

    async def send_one(group: list[Prompt]) -> Result:
        if embeddings:
            return await send_embeddings(client, url, embedding_body(model, group))
        return await send(client, url, request_body(url, model, group[0], traffic.ignore_eos))

    async with client:
        probe = await send_one(groups[0][:1])
        if not probe.success:
            raise BenchError(f"the first test request to {url} failed: {probe.error}")
        gate = asyncio.Semaphore(limit) if limit else None
        bar = tqdm(total=len(groups), disable=traffic.disable_tqdm, unit="req")

        async def one(group: list[Prompt]) -> Result:
            if gate is None:
                result = await send_one(group)
            else:
                async with gate:
                    result = await send_one(group)
            bar.update(1)
            return result

        arrivals = random.Random(seed)
        start = time.perf_counter()
        tasks = []
        for group in groups:
            tasks.append(asyncio.create_task(one(group)))
            if not math.isinf(traffic.request_rate):
                await asyncio.sleep(arrivals.expovariate(traffic.request_rate))
        results = await asyncio.gather(*tasks)
        duration = time.perf_counter() - start
        bar.close()
    return list(results), duration
