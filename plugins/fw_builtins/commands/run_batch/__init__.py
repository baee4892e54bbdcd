"""`fw run-batch`: run a file of OpenAI batch requests through one engine.

Only the config models are imported at module level, so `fw run-batch --help` stays
quick. Everything that can be checked before the engine loads (the options, the input
file, where the output goes) is checked first, so a typo costs seconds, not a model load.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable

import click

from fw.cli.config_command import config_command
from fw.errors import FwError
from fw_builtins.commands.run_batch.config import RunBatchConfig

logger = logging.getLogger("fw.run_batch")


def run(config: RunBatchConfig, engine_factory: Callable[[Any], Any] | None = None) -> list[dict[str, Any]]:
    """Run the batch of ``config`` and write its output; returns the output records.
    ``engine_factory(serve_config)`` defaults to `fw serve`'s (tests pass a fake)."""
    from fw.server.launch import check_options
    from fw_builtins.commands.run_batch import files
    from fw_builtins.commands.run_batch.runner import run_batch
    from fw_builtins.commands.serve import build_engine

    batch = config.batch
    if not batch.input_file:
        raise click.UsageError("missing option -i/--input-file")
    if not batch.output_file:
        raise click.UsageError("missing option -o/--output-file")
    check_options(config.serve_config())
    files.check_output(batch.output_file, batch.output_tmp_dir)
    lines = files.request_lines(files.read_input(batch.input_file))
    logger.info("read %d request lines from %s", len(lines), batch.input_file)
    records = asyncio.run(run_batch(config, lines, engine_factory or build_engine))
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    files.write_output(batch.output_file, text.encode(), batch.output_tmp_dir)
    errors = sum(record["error"] is not None for record in records)
    logger.info("wrote %d results to %s (%d failed)", len(records), batch.output_file, errors)
    return records


@config_command(
    RunBatchConfig, name="run-batch",
    help="Run a file of OpenAI batch requests (JSON lines for /v1/chat/completions, "
         "/v1/completions, /v1/embeddings, /v1/score and /v1/rerank) through one engine, all at "
         "once, and write one result line per request, in order: `fw run-batch -i batch.jsonl -o results.jsonl --model PATH` "
         "(or a hub id, ORG/NAME). "
         "A bad line gets an error in its result line and does not stop the batch. The "
         "engine options of `fw serve` apply; -i/-o and the metrics options are in the "
         "RunBatch group.",
)
def run_batch(config: RunBatchConfig) -> None:
    from fw.model_loader.default_model import DefaultModelMissing

    try:
        run(config)
    except (ValueError, FwError, DefaultModelMissing) as exc:
        raise click.ClickException(str(exc)) from None
