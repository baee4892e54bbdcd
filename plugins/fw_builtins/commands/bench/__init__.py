"""`fw bench`: the benchmark commands, one module each in this package.

Subcommands are listed here by import path and imported only when run, so `fw bench
--help` stays fast and `fw bench serve` (an HTTP client) never imports the engine that
the offline benchmarks need. To add one (``latency``, ``throughput``), add a line to
``SUBCOMMANDS``.
"""

from __future__ import annotations

import click

from fw.registry import import_target

#: name -> ("module:command", one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "latency": ("fw_builtins.commands.bench.latency:latency",
                "Time one batch of requests end to end, repeatedly (offline engine)."),
    "roofline": ("fw_builtins.commands.bench.roofline:roofline",
                 "The int8 peak and memory bandwidth, and the model's kernels against them."),
    "serve": ("fw_builtins.commands.bench.serve:serve",
              "Benchmark a running OpenAI-compatible server under load (online serving)."),
    "throughput": ("fw_builtins.commands.bench.throughput:throughput",
                   "Requests and tokens per second for a set of prompts (offline engine)."),
}


class BenchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        return import_target(SUBCOMMANDS[name][0])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=BenchGroup, name="bench")
def bench() -> None:
    """Benchmark fw; `fw bench COMMAND --help` describes each benchmark."""
