"""The figures of a serving benchmark, the result table and the JSON file.

The names and definitions follow vLLM's serving benchmark, so results compare directly:
TTFT is the time to the first token; TPOT the time per output token after the first,
(latency - TTFT) / (output tokens - 1), per request; ITL the gap between streamed
chunks, over all requests; E2EL the whole request. Latencies are reported in ms.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fw_builtins.commands.bench.requests import Result

#: metric -> (section title, label)
METRIC_TITLES = {
    "ttft": ("Time to First Token", "TTFT"),
    "tpot": ("Time per Output Token (excl. 1st token)", "TPOT"),
    "itl": ("Inter-token Latency", "ITL"),
    "e2el": ("End-to-end Latency", "E2EL"),
}
WIDTH = 50


def percentile_name(p: float) -> str:
    """99 -> "99", 99.9 -> "99.9": how a percentile appears in labels and JSON keys."""
    return str(int(p)) if p == int(p) else str(p)


def _series(ok: Sequence[Result]) -> dict[str, list[float]]:
    return {
        "ttft": [r.ttft for r in ok],
        "tpot": [(r.latency - r.ttft) / (r.output_tokens - 1) for r in ok if r.output_tokens > 1],
        "itl": [gap for r in ok for gap in r.itl],
        "e2el": [r.latency for r in ok],
    }


def summarize(results: Sequence[Result], duration: float, metrics: Sequence[str],
              percentiles: Sequence[float]) -> dict[str, Any]:
    """Every figure of the table, keyed as in the JSON file."""
    ok = [r for r in results if r.success]
    total_input = sum(r.prompt_tokens for r in ok)
    total_output = sum(r.output_tokens for r in ok)
    figures: dict[str, Any] = {
        "duration": duration,
        "completed": len(ok),
        "failed": len(results) - len(ok),
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": len(ok) / duration,
        "output_throughput": total_output / duration,
        "total_token_throughput": (total_input + total_output) / duration,
    }
    inputs = sum(r.inputs for r in ok)
    if inputs:  # /v1/embeddings
        figures["embedded_inputs"] = inputs
        figures["embedding_throughput"] = inputs / duration
    series = _series(ok)
    for name in metrics:
        values = np.asarray(series[name] or [0.0]) * 1000
        figures[f"mean_{name}_ms"] = float(np.mean(values))
        figures[f"median_{name}_ms"] = float(np.median(values))
        figures[f"std_{name}_ms"] = float(np.std(values))
        for p in percentiles:
            figures[f"p{percentile_name(p)}_{name}_ms"] = float(np.percentile(values, p))
    return figures


def format_table(figures: dict[str, Any], metrics: Sequence[str], percentiles: Sequence[float],
                 max_concurrency: int | None) -> str:
    def row(label: str, value: Any) -> str:
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        return f"{label + ':':<40} {text:<10}".rstrip()

    lines = [f"{' Serving Benchmark Result ':=^{WIDTH}}", row("Successful requests", figures["completed"])]
    if figures["failed"]:
        lines.append(row("Failed requests", figures["failed"]))
    if max_concurrency is not None:
        lines.append(row("Maximum request concurrency", max_concurrency))
    lines += [
        row("Benchmark duration (s)", figures["duration"]),
        row("Total input tokens", figures["total_input_tokens"]),
        row("Total generated tokens", figures["total_output_tokens"]),
        row("Request throughput (req/s)", figures["request_throughput"]),
        row("Output token throughput (tok/s)", figures["output_throughput"]),
        row("Total Token throughput (tok/s)", figures["total_token_throughput"]),
    ]
    if "embedded_inputs" in figures:
        lines += [row("Inputs embedded", figures["embedded_inputs"]),
                  row("Embedding throughput (inputs/s)", figures["embedding_throughput"])]
    for name in metrics:
        title, label = METRIC_TITLES[name]
        lines.append(f"{title:-^{WIDTH}}")
        lines.append(row(f"Mean {label} (ms)", figures[f"mean_{name}_ms"]))
        lines.append(row(f"Median {label} (ms)", figures[f"median_{name}_ms"]))
        for p in percentiles:
            key = percentile_name(p)
            lines.append(row(f"P{key} {label} (ms)", figures[f"p{key}_{name}_ms"]))
    lines.append("=" * WIDTH)
    return "\n".join(lines)


def default_filename(model: str, request_rate: float, max_concurrency: int | None,
                     now: datetime) -> str:
    rate = "inf" if math.isinf(request_rate) else f"{request_rate:g}"
    concurrency = f"-concurrency{max_concurrency}" if max_concurrency else ""
    model_part = Path(model.rstrip("/")).name or "model"
    return f"fw-{rate}qps{concurrency}-{model_part}-{now:%Y%m%d-%H%M%S}.json"


def save(path: Path, figures: dict[str, Any], results: Sequence[Result], settings: dict[str, Any],
         now: datetime) -> Path:
    """Write the figures, the settings that produced them and per-request data as JSON."""
    document = {
        "date": f"{now:%Y%m%d-%H%M%S}",
        **settings,
        **figures,
        "input_lens": [r.prompt_tokens for r in results],
        "output_lens": [r.output_tokens for r in results],
        "ttfts": [r.ttft for r in results],
        "itls": [r.itl for r in results],
        "generated_texts": [r.text for r in results],
        "errors": [r.error for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
