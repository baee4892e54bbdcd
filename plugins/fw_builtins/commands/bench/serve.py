"""`fw bench serve`: load a running OpenAI-compatible server and measure it.

It sends a set of prompts (random, ShareGPT or your own) at a chosen request rate and
concurrency, streams every reply, and reports throughput and the latency figures users
feel: time to first token, time per output token, inter-token latency, end-to-end
latency. With ``--endpoint /v1/embeddings`` it embeds the prompts instead, several per
request if asked, and reports inputs embedded per second and request latency. Token counts are the server's own (`usage`), so any server can be measured
without fw's tokenizer agreeing with it. Heavy imports wait until the command runs.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from fw.cli.config_command import config_command
from fw.config import ConfigGroup, option

METRICS = ("ttft", "tpot", "itl", "e2el")


class TargetOptions(ConfigGroup):
    group_title = "Server"
    group_help = "Which server, endpoint and model to benchmark."

    base_url: str | None = option(
        None, "The server's root URL, e.g. http://host:8000 (--endpoint is appended); "
              "overrides --host and --port.")
    host: str = option("127.0.0.1", "The server's host, when --base-url is not given.")
    port: int = option(8000, "The server's port, when --base-url is not given.")
    endpoint: Literal["/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/messages",
                      "/v1/embeddings"] = option(
        "/v1/completions", "The API to call; each prompt becomes one request (a user message for the "
                           "chat, Responses and Anthropic Messages APIs); /v1/embeddings embeds "
                           "--inputs-per-request prompts per request.")
    model: str | None = option(
        None, "The model to ask for; when not given, the first one the server lists at /v1/models.")
    tokenizer: str | None = option(
        None, "Tokenizer (a model folder or file) used to make random prompts and to size "
              "ShareGPT ones; when not given, the model's.")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        # The endpoint carries the /v1, so a root given as ".../v1" means the same server.
        return value.rstrip("/").removesuffix("/v1") if value else value

    def api_base(self) -> str:
        return self.base_url or f"http://{self.host}:{self.port}"


class DatasetOptions(ConfigGroup):
    group_title = "Dataset"
    group_help = "Which prompts to send and how long the replies should be."

    dataset_name: Literal["random", "sharegpt", "custom", "prefix_repetition"] = option(
        "random", "random: random tokens of --random-input-len; sharegpt: first turns of a "
                  "ShareGPT JSON file; custom: a JSONL file of {\"prompt\": ...} lines; prefix_repetition: "
                  "random prompts that start with one of a few shared prefixes (system prompts).")
    dataset_path: str | None = option(None, "The ShareGPT or custom dataset file.")
    num_prompts: int = option(1000, "How many requests to send.", ge=1)
    random_input_len: int = option(1024, "Prompt length in tokens (random dataset).", ge=1)
    random_output_len: int = option(128, "Reply length in tokens (random dataset).", ge=1)
    random_range_ratio: float = option(
        0.0, "Draw random lengths uniformly within this fraction of --random-input-len and "
              "--random-output-len (0.1 = ±10%).", ge=0.0, lt=1.0)
    sharegpt_output_len: int | None = option(
        None, "Reply length for every ShareGPT prompt; when not given, the recorded reply's.", ge=1)
    custom_output_len: int = option(256, "Reply length in tokens (custom dataset).", ge=1)
    prefix_repetition_prefix_len: int = option(256, "Shared prefix length in tokens (prefix_repetition).", ge=1)
    prefix_repetition_suffix_len: int = option(256, "Per-request suffix length in tokens (prefix_repetition).",
                                               ge=1)
    prefix_repetition_num_prefixes: int = option(10, "How many distinct prefixes (prefix_repetition).", ge=1)
    prefix_repetition_output_len: int = option(128, "Reply length in tokens (prefix_repetition).", ge=1)
    seed: int = option(0, "Seed for prompt sampling and request arrival times.")

    @model_validator(mode="after")
    def _path_when_needed(self) -> "DatasetOptions":
        if self.dataset_name in ("sharegpt", "custom") and not self.dataset_path:
            raise ValueError(f"--dataset-name {self.dataset_name} needs --dataset-path")
        return self


class TrafficOptions(ConfigGroup):
    group_title = "Traffic"
    group_help = "How fast requests arrive and how many may be in flight."

    request_rate: float = option(
        math.inf, "Requests per second, arriving as a Poisson process; inf sends all at once.", gt=0)
    max_concurrency: int | None = option(
        None, "At most this many requests in flight; others wait their turn.", ge=1)
    ignore_eos: bool = option(
        False, "Ask the server to ignore end-of-sequence, so every reply has its full length.")
    inputs_per_request: int = option(
        1, "With --endpoint /v1/embeddings: how many prompts each request embeds (its input list); "
           "--num-prompts counts prompts.", ge=1)
    disable_tqdm: bool = option(False, "Do not show the progress bar.")


class ResultOptions(ConfigGroup):
    group_title = "Results"
    group_help = "What to report and where to save it."

    percentile_metrics: str = option(
        ",".join(METRICS), "Comma-separated metrics to report: ttft, tpot, itl, e2el.")
    metric_percentiles: str = option("99", "Comma-separated percentiles to report, e.g. 50,90,99.")
    save_result: bool = option(False, "Save the figures (and per-request data) as JSON.")
    result_dir: str | None = option(None, "Folder for the JSON file; when not given, the current one.")
    result_filename: str | None = option(
        None, "Name of the JSON file; when not given, fw-<rate>qps[-concurrency<n>]-<model>-<date>.json.")

    @field_validator("percentile_metrics")
    @classmethod
    def _known_metrics(cls, value: str) -> str:
        names = [m.strip() for m in value.split(",") if m.strip()]
        unknown = [m for m in names if m not in METRICS]
        if unknown or not names:
            raise ValueError(f"unknown metric {', '.join(unknown) or '(none)'}; "
                             f"choose from {', '.join(METRICS)}")
        return ",".join(names)

    @field_validator("metric_percentiles")
    @classmethod
    def _percentiles(cls, value: str) -> str:
        try:
            numbers = [float(p) for p in value.split(",") if p.strip()]
        except ValueError:
            raise ValueError(f"{value!r} is not a comma-separated list of numbers") from None
        if not numbers or not all(0 < p <= 100 for p in numbers):
            raise ValueError(f"percentiles must lie in (0, 100], got {value!r}")
        return value

    def metrics(self) -> list[str]:
        return self.percentile_metrics.split(",")

    def percentiles(self) -> list[float]:
        return [float(p) for p in self.metric_percentiles.split(",") if p.strip()]


class BenchServeConfig(BaseModel):
    target: TargetOptions = Field(default_factory=TargetOptions)
    dataset: DatasetOptions = Field(default_factory=DatasetOptions)
    traffic: TrafficOptions = Field(default_factory=TrafficOptions)
    result: ResultOptions = Field(default_factory=ResultOptions)


@config_command(BenchServeConfig, name="serve",
                help="Benchmark a running OpenAI-compatible server: send prompts at a chosen "
                     "rate and concurrency, stream the replies, and report throughput and "
                     "latency (TTFT, TPOT, ITL, end-to-end). $OPENAI_API_KEY, if set, is sent "
                     "as the Bearer token.")
def serve(config: BenchServeConfig) -> None:
    from fw_builtins.commands.bench.runner import run

    run(config)
