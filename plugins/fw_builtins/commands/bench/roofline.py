"""`fw bench roofline`: how close the model's kernels run to this machine's limits.

A kernel's speed alone says little (500 GOP/s is most of one CPU's int8 peak and a third of
another's), so this measures the ceilings first: the int8 dot-product peak (a ``vpdpbusd``
loop with enough independent accumulators, on one thread and on the threads fw uses) and
the memory copy bandwidth. Then it times the loaded model's own kernels against them:

- each projection shape (all the layers of that shape, so weights stream from memory as in
  a real step) at several row counts, in the layout the model runs at that row count, as
  GOP/s (2 * rows * N * K per product) and as a share of the int8 peak;
- decode attention over the paged KV cache (the model's heads and dtype), as GB/s of
  KV cache read, beside the copy bandwidth.
"""

from __future__ import annotations

import time
from typing import Any

import click
from pydantic import Field

from fw.cli.config_command import config_command
from fw.config import ConfigGroup, EngineConfig, option


class RooflineOptions(ConfigGroup):
    group_title = "Roofline"
    group_help = "The row counts and the attention shape to time."

    rows: list[int] = option([1, 8, 32, 128], "Rows (tokens) per projection call to time.")
    attention_seqs: int = option(32, "Sequences of the decode attention timed.", ge=1)
    attention_context: int = option(1024, "Context length of each of those sequences, in tokens.", ge=1)
    output_json: str | None = option(None, "Also write the figures to this JSON file.")


class RooflineConfig(EngineConfig):
    """The engine's option groups plus what to time."""

    roofline: RooflineOptions = Field(default_factory=RooflineOptions)


def best_seconds(fn, budget: float = 0.3) -> float:
    """The fastest of repeated calls, over about ``budget`` seconds (at least 3 calls)."""
    fn()
    best, spent, calls = float("inf"), 0.0, 0
    while calls < 3 or spent < budget:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return best


def limits() -> dict[str, Any]:
    """The machine's ceilings: int8 peak GOP/s on 1 and on torch's threads, copy GB/s."""
    import torch

    from fw_kernels.cpu import roofline

    threads = torch.get_num_threads()
    figures: dict[str, Any] = {"threads": threads, "copy_gb_per_s": roofline.copy_bandwidth()}
    if roofline.int8_peak_available():
        figures["int8_peak_gops_1_thread"] = roofline.int8_peak(1)
        figures["int8_peak_gops"] = roofline.int8_peak(threads)
    return figures


def projections(model: Any, dtype: Any, rows_list: list[int]) -> list[dict[str, Any]]:
    """GOP/s of every projection shape of ``model`` at each row count."""
    import torch

    groups: dict[tuple[str, int, int], list[Any]] = {}
    for name, module in model.named_modules():
        packed = getattr(module, "packed", None)
        if packed is not None and hasattr(packed, "layout_for"):
            kind = name.rsplit(".", 1)[-1]
            groups.setdefault((kind, *packed.shape), []).append(module)
    results = []
    for rows in rows_list:
        for (kind, n, k), modules in groups.items():
            x = torch.randn(rows, k).to(dtype)
            seconds = best_seconds(lambda: [m.packed.matmul(x) for m in modules])
            results.append({"rows": rows, "projection": kind, "n": n, "k": k, "layers": len(modules),
                            "layout": type(modules[0].packed.layout_for(rows)).__name__,
                            "gops": 2 * rows * n * k * len(modules) / seconds / 1e9})
    return results


def attention(model: Any, dtype: Any, seqs: int, context: int) -> dict[str, Any] | None:
    """GB/s of KV cache read by the CPU decode-attention kernel, or None where it is not built."""
    import torch

    from fw.layers.attention import Attention
    from fw_kernels import cpu

    layer = next((m for m in model.modules() if isinstance(m, Attention)), None)
    if layer is None or not cpu.supports(torch.empty(0, dtype=dtype)):
        return None
    block_size = 16
    blocks_per_seq = -(-context // block_size)
    cache_shape = (seqs * blocks_per_seq, block_size, layer.num_kv_heads, layer.head_size)
    keys, values = torch.randn(cache_shape).to(dtype), torch.randn(cache_shape).to(dtype)
    query = torch.randn(seqs, layer.num_heads, layer.head_size).to(dtype)
    table = torch.arange(seqs * blocks_per_seq, dtype=torch.int32).view(seqs, blocks_per_seq)
    lens = torch.full((seqs,), context, dtype=torch.int32)
    seconds = best_seconds(lambda: cpu.paged_decode(query, keys, values, table, lens, layer.head_size ** -0.5,
                                                    max_len=context))
    read = 2 * seqs * context * layer.num_kv_heads * layer.head_size * keys.element_size()
    return {"seqs": seqs, "context": context, "kv_bytes": read, "gb_per_s": read / seconds / 1e9}


def report(figures: dict[str, Any]) -> str:
    ceiling = figures["limits"]
    peak = ceiling.get("int8_peak_gops")
    threads = ceiling["threads"]
    lines = ["Limits of this machine:"]
    if peak:
        lines.append(f"  int8 peak (vpdpbusd): {ceiling['int8_peak_gops_1_thread']:.0f} GOP/s on 1 thread, "
                     f"{peak:.0f} GOP/s on {threads}")
    else:
        lines.append("  int8 peak: not measured (the probe needs AVX512-VNNI and fw's CPU kernels)")
    lines += [f"  memory copy bandwidth: {ceiling['copy_gb_per_s']:.1f} GB/s", "",
              f"| rows | projection | N x K | layers | layout | GOP/s | of the int8 peak ({threads} threads) |",
              "|---:|---|---|---:|---|---:|---:|"]
    for r in figures["projections"]:
        share = f"{100 * r['gops'] / peak:.0f} %" if peak else "-"
        lines.append(f"| {r['rows']} | {r['projection']} | {r['n']} x {r['k']} | {r['layers']} | {r['layout']} | "
                     f"{r['gops']:.0f} | {share} |")
    attn = figures.get("attention")
    if attn:
        lines += ["", f"Decode attention, {attn['seqs']} sequences x {attn['context']} tokens: "
                      f"{attn['gb_per_s']:.1f} GB/s of KV cache read "
                      f"({100 * attn['gb_per_s'] / ceiling['copy_gb_per_s']:.0f} % of the copy bandwidth)"]
    return "\n".join(lines)


@config_command(RooflineConfig, name="roofline",
                help="Measure this machine's int8 peak and memory bandwidth, then time the model's "
                     "projections (GOP/s per shape and row count) and decode attention (GB/s of KV "
                     "cache read) against them. The engine options of `fw serve` apply.")
def roofline(config: RooflineConfig) -> None:
    from fw_builtins.commands.bench.offline import load_engine, write_json

    options = config.roofline
    engine = load_engine(config)
    model, dtype = engine.loaded.model, engine.loaded.dtype
    figures = {"limits": limits(), "projections": projections(model, dtype, options.rows),
               "attention": attention(model, dtype, options.attention_seqs, options.attention_context)}
    click.echo(report(figures))
    write_json(options.output_json, figures)
