"""`fw run-batch`'s options: every engine group (so a batch runs on exactly the engine
`fw serve` would load), the general logging options, the part of `fw serve`'s Frontend
group that shapes requests and answers, and the command's own group (files, metrics).

The Frontend options are taken from ``FrontendConfig`` itself, help and defaults
included, rather than restated; the ones left out (address, TLS, CORS, API keys,
middleware, docs) only mean something for a listening HTTP server, which run-batch does
not start.
"""

from __future__ import annotations

from pydantic import Field, create_model

from fw.config import ConfigGroup, EngineConfig, option
from fw.config.frontend import FrontendConfig, ServeOptions
from fw.config.serve import ServeConfig

#: the Frontend options that matter when requests come from a file
BATCH_FRONTEND_OPTIONS = (
    "chat_template", "chat_template_content_format", "trust_request_chat_template",
    "response_role", "return_tokens_as_token_ids", "max_log_len",
    "enable_prompt_tokens_details", "enable_log_outputs", "log_error_stack",
)


class RunBatchOptions(ConfigGroup):
    group_title = "RunBatch"
    group_help = "The batch's input and output files, and its Prometheus metrics endpoint."

    input_file: str | None = option(
        None,
        "The batch to run: a local path, or an http(s) URL read with GET. One JSON request "
        "per line with custom_id, method (POST), url (/v1/chat/completions, /v1/completions, "
        "/v1/embeddings, /v1/score or /v1/rerank) and body; blank lines are skipped.",
        short="-i",
    )
    output_file: str | None = option(
        None,
        "Where the results go: a local path, or an http(s) URL written with PUT. One line "
        "per request line, in input order, each with its custom_id.",
        short="-o",
    )
    output_tmp_dir: str | None = option(
        None,
        "A folder to write the output to before uploading it to an --output-file URL "
        "(otherwise it is held in memory). If the upload fails the file is kept there.",
    )
    enable_metrics: bool = option(
        False, "Serve Prometheus metrics (GET /metrics) on --url and --port while the batch runs."
    )
    port: int = option(
        8000, "Port of the Prometheus metrics server (0 picks a free one; the log shows it).",
        ge=0, le=65535,
    )
    url: str = option(
        "127.0.0.1",
        "Address the Prometheus metrics server listens on. Loopback by default (vLLM uses "
        "0.0.0.0); give 0.0.0.0 to expose it to the network.",
    )


_PickedFrontend = create_model(
    "_PickedFrontend", __base__=ConfigGroup,
    **{name: (FrontendConfig.model_fields[name].annotation, FrontendConfig.model_fields[name])
       for name in BATCH_FRONTEND_OPTIONS},
)


class BatchFrontendConfig(_PickedFrontend):  # type: ignore[misc, valid-type]
    group_title = "Frontend"
    group_help = "Options of the OpenAI-compatible frontend that apply to batch requests."


class RunBatchConfig(EngineConfig):
    """The engine's option groups (whatever ``EngineConfig`` holds) plus the batch's."""

    batch: RunBatchOptions = Field(default_factory=RunBatchOptions)
    options: ServeOptions = Field(default_factory=ServeOptions)
    frontend: BatchFrontendConfig = Field(default_factory=BatchFrontendConfig)

    def serve_config(self) -> ServeConfig:
        """The `fw serve` configuration of the in-process app: the engine groups as given,
        the Frontend options not offered here at their defaults."""
        engine = {name: getattr(self, name) for name in EngineConfig.model_fields}
        return ServeConfig(options=self.options, frontend=FrontendConfig(**self.frontend.model_dump()),
                           **engine)
