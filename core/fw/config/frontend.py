"""The options of the OpenAI-compatible server: `fw serve`'s general options and its
Frontend group.

Names, defaults and meaning follow vLLM's, with one deliberate difference: ``--host``
defaults to ``127.0.0.1`` (vLLM listens on every interface), so a server started on a
laptop or a shared machine is not reachable from the network until the user asks for it
with ``--host 0.0.0.0``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from fw.config.base import ConfigGroup, option

UvicornLogLevel = Literal["critical", "debug", "error", "info", "trace", "warning"]
ContentFormat = Literal["auto", "openai", "string"]


class ServeOptions(ConfigGroup):
    """The ungrouped options vLLM lists first under `serve` (logging switches), and the
    trace endpoint: the server sends the spans, so engine-only commands do not take it."""

    group_title = "ServeOptions"
    group_help = "General options of `fw serve`."

    disable_log_stats: bool = option(
        False, "Disable the periodic log line of engine statistics (throughput, queue, KV cache)."
    )
    enable_log_requests: bool = option(
        False, "Log every request: its id, prompt (see --max-log-len) and sampling parameters."
    )
    headless: bool = option(
        False, "Run only engine cores, no API server: a secondary node of a multi-node data parallel "
               "deployment (with --data-parallel-address/--data-parallel-rpc-port of the head node), or a "
               "tensor parallel worker node (with --nnodes/--node-rank/--master-addr)."
    )
    shutdown_timeout: float = option(
        30.0, "On SIGTERM, how many seconds running requests get to finish before they are ended (with an "
              "error event on streams); the server stops accepting new connections at once and exits 0.",
        ge=0,
    )
    api_server_count: int = option(
        1, "How many API server processes to run; they share the port and every engine core.", short="-asc",
        ge=1,
    )
    disable_log_requests: bool | None = option(
        None,
        "Deprecated spelling (vLLM's): --disable-log-requests keeps request logging off, as it is "
        "by default; --no-disable-log-requests turns it on, like --enable-log-requests.",
    )
    otlp_traces_endpoint: str | None = option(
        None,
        "Send one OpenTelemetry span per request (vLLM's llm_request span and gen_ai.* attributes) "
        "to this OTLP endpoint (vLLM lists it under ObservabilityConfig). OTEL_EXPORTER_OTLP_TRACES_PROTOCOL picks the protocol "
        "(http/protobuf by default; grpc needs opentelemetry-exporter-otlp-proto-grpc); the other "
        "OTEL_* variables (headers, service name, timeouts) are honoured as usual.",
    )

    @model_validator(mode="after")
    def _one_request_log_switch(self) -> "ServeOptions":
        if self.enable_log_requests and self.disable_log_requests:
            raise ValueError("--enable-log-requests and --disable-log-requests contradict each other; give one")
        return self

    @property
    def log_requests(self) -> bool:
        """Whether requests are logged, from either spelling."""
        return self.enable_log_requests or self.disable_log_requests is False


class FrontendConfig(ConfigGroup):
    group_title = "Frontend"
    group_help = "Arguments for the OpenAI-compatible frontend server."

    host: str = option(
        "127.0.0.1",
        "Host name or address to listen on. Defaults to loopback only (vLLM listens on all "
        "interfaces); use --host 0.0.0.0 to expose the server to the network.",
    )
    port: int = option(8000, "Port number (0 picks a free port; the start-up log shows it).")
    uds: str | None = option(
        None, "Unix domain socket path. If set, --host and --port are ignored."
    )
    uvicorn_log_level: UvicornLogLevel = option("info", "Log level for uvicorn.")
    disable_uvicorn_access_log: bool = option(False, "Disable uvicorn's access log.")
    allow_credentials: bool = option(False, "CORS: allow credentials.")
    allowed_origins: list[str] = option(["*"], "CORS: allowed origins.")
    allowed_methods: list[str] = option(["*"], "CORS: allowed methods.")
    allowed_headers: list[str] = option(["*"], "CORS: allowed headers.")
    api_key: list[str] | None = option(
        None,
        "If given, requests to /v1/* must carry one of these keys as 'Authorization: Bearer "
        "KEY' (repeat the option for several keys; FW_API_KEY may hold several separated by "
        "spaces). /tokenize, /detokenize and /get_tokenizer_info need it too (see "
        "--tokenize-without-api-key); /health, /version, /metrics and /docs stay open.",
        env="FW_API_KEY",
    )
    tokenize_without_api_key: bool = option(
        False,
        "Let /tokenize, /detokenize and /get_tokenizer_info answer without --api-key, as "
        "vLLM's do. Off by default: they run the tokenizer and chat templates for whoever "
        "calls them.",
    )
    chat_template: str | None = option(
        None,
        "The chat template: a file path, or the template itself in single-line form. "
        "Defaults to the template the model's tokenizer (or GGUF file) carries.",
    )
    chat_template_content_format: ContentFormat = option(
        "auto",
        'How message content is handed to the chat template: "string" joins text parts '
        'into one string; "openai" passes a list of parts ([{"type": "text", "text": ...}]); '
        '"auto" picks from what the template reads.',
    )
    trust_request_chat_template: bool = option(
        False,
        "Honour a chat_template given in a request. If off, such requests are rejected "
        "and the server's template (--chat-template or the tokenizer's) is always used.",
    )
    response_role: str = option(
        "assistant", "The role name returned when a request has add_generation_prompt=true."
    )
    ssl_keyfile: str | None = option(None, "The file path to the SSL key file.")
    ssl_certfile: str | None = option(None, "The file path to the SSL certificate file.")
    ssl_ca_certs: str | None = option(None, "The CA certificates file.")
    ssl_cert_reqs: int = option(
        0, "Whether a client certificate is required (the stdlib ssl module's CERT_* value)."
    )
    root_path: str | None = option(
        None, "The root path the app is served under, when it sits behind a path-based proxy."
    )
    middleware: list[str] = option(
        [],
        "Extra ASGI middleware, as an import path ('package.module:name' or "
        "'package.module.name'); repeatable. A class is added with app.add_middleware(), a "
        "function as an HTTP middleware (@app.middleware('http')).",
    )
    enable_auto_tool_choice: bool = option(
        False,
        'Let the model decide when to call tools (tool_choice "auto"); needs --tool-call-parser '
        "to read the calls out of its text.",
    )
    tool_call_parser: str | None = option(
        None,
        "The parser that reads tool calls out of the model's output for tool_choice \"auto\": "
        "hermes, mistral, llama3_json, pythonic, or a plugin's (see `fw plugins`).",
    )
    tool_parser_plugin: str | None = option(
        None,
        "A Python file with a fw plugin (an @hookimpl fw_register_tool_parsers) to load at "
        "start-up, so its parser can be named with --tool-call-parser.",
    )
    exclude_tools_when_tool_choice_none: bool = option(
        False, 'Do not show the request\'s tools to the chat template when tool_choice is "none".'
    )
    return_tokens_as_token_ids: bool = option(
        False,
        "In logprobs, represent each token as the string 'token_id:{id}', so tokens that "
        "are not valid UTF-8 on their own can still be identified.",
    )
    enable_request_id_headers: bool = option(
        False,
        "Add an X-Request-Id header to every response (the client's own X-Request-Id if "
        "it sent one).",
    )
    max_log_len: int | None = option(
        None,
        "Maximum number of prompt characters or prompt token ids printed in request logs; "
        "unlimited if unset.",
    )
    disable_fastapi_docs: bool = option(
        False, "Disable the OpenAPI schema (/openapi.json), the Swagger UI (/docs) and ReDoc (/redoc)."
    )
    enable_prompt_tokens_details: bool = option(
        True,
        "Include prompt_tokens_details.cached_tokens (prompt tokens read from the prefix "
        "cache) in the usage of chat and completions responses. On by default (vLLM's is "
        "off); the Responses and Messages APIs always report it, as their APIs define.",
    )
    enable_force_include_usage: bool = option(
        False,
        "Include usage in every response, streamed ones too (as if every request set "
        "stream_options.include_usage).",
    )
    enable_tokenizer_info_endpoint: bool = option(
        False,
        "Enable the /get_tokenizer_info endpoint. It exposes the chat template and other "
        "tokenizer configuration.",
    )
    enable_log_outputs: bool = option(
        False, "Log each request's generated text. Requires --enable-log-requests."
    )
    h11_max_incomplete_event_size: int = option(
        4194304,
        "Maximum size in bytes of an incomplete HTTP event (headers, or a body chunk) the "
        "h11 parser buffers. Limits header abuse. Accepts k/K/m/M suffixes.",
        size=True,
    )
    h11_max_header_count: int = option(
        256,
        "Maximum number of HTTP headers a request may carry (431 beyond). Limits header abuse.",
    )
    responses_store_max_entries: int = option(
        1000,
        "Responses API: keep at most this many responses (for previous_response_id and GET "
        "/v1/responses/{id}); the least recently used go first. 0 turns the store off.",
        ge=0,
    )
    responses_store_max_bytes: int = option(
        64 * 1024 * 1024,
        "Responses API: keep at most this many bytes of stored responses and the conversations "
        "they end (as JSON); the least recently used go first. Accepts k/K/m/M/g/G suffixes.",
        size=True, ge=0,
    )
    responses_store_ttl: float = option(
        3600.0, "Responses API: seconds a stored response is kept after it was stored.", gt=0,
    )
    log_error_stack: bool = option(
        False,
        "Log the stack trace of every error response. Without it a 4xx is not logged and an "
        "internal error (500) is one line: its request id, the exception and where it was raised.",
    )
    max_request_body_bytes: int = option(
        16 * 1024 * 1024,
        "Largest request body accepted, in bytes (413 beyond; a Content-Length above it is "
        "refused before the body is read). Accepts k/K/m/M suffixes.",
        size=True, ge=1,
    )
    preprocess_workers: int = option(
        2,
        "Threads that parse large request bodies, render chat templates and tokenize "
        "prompts, so that this work never holds up the event loop (health checks, streams).",
        ge=1,
    )
    preprocess_queue_size: int = option(
        64,
        "Requests that may wait for a --preprocess-workers thread; beyond that a request is "
        "refused with 503 and Retry-After before any of its work is done.",
        ge=0,
    )
    expose_model_paths: bool = option(
        False,
        "Show the model's and the LoRA adapters' file-system paths as `root` in /v1/models "
        "(vLLM's behaviour). By default `root` is the model's name, so clients do not learn "
        "the server's folder layout.",
    )
    disable_frontend_multiprocessing: bool = option(
        False, "Run the engine in the API server's process (on a thread) instead of its own process."
    )
    enable_ssl_refresh: bool = option(
        False,
        "Reload the TLS certificate and key when --ssl-certfile / --ssl-keyfile (or --ssl-ca-certs) "
        "change on disk, so a renewed certificate is served without a restart.",
    )
    log_config_file: str | None = option(
        None,
        "A JSON file in Python's logging.config.dictConfig format, applied at start-up to fw's "
        "and uvicorn's loggers (FW_LOGGING_CONFIG_PATH is read when the option is not given).",
        env="FW_LOGGING_CONFIG_PATH",
    )
    enable_server_load_tracking: bool = option(
        False,
        "Count the requests the server is handling (server_load_metrics) and serve the count "
        'at GET /load as {"server_load": N}, for load balancers.',
    )
    tool_server: str | None = option(
        None,
        "Host:port pairs of MCP tool servers (or 'demo') for the Responses API's built-in tools.",
        unsupported="fw serves no Responses-API built-in tools; run the tools in your client and "
                    "pass their results back as tool messages",
    )
