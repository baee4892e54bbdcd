"""ServerContext: what every route needs, built once per app."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from fw.chat.template import chat_template_option
from fw.config.serve import ServeConfig
from fw.engine.protocol import EngineClient, ModelInfo
from fw.errors import InvalidParameterError, ModelNotFoundError, NotSupportedError
from fw.lora.request import LoRARequest
from fw.server.chat_parsing import ChatParsing
from fw.server.lifecycle import Lifecycle
from fw.server.logprobs import TokenText
from fw.server.metrics import ServerMetrics
from fw.server.preprocess import longest_token_chars
from fw.server.protocol.chat import ChatTemplateFields
from fw.server.protocol.models import TokenizeRequest
from fw.server.request_log import RequestLogger
from fw.server.workers import PreprocessPool
from fw.server.response_store import ResponseStore
from fw.server.responses_service import ResponsesService
from fw.server.tracing import RequestTracer


@dataclass(frozen=True)
class ServedModel:
    """The model a request asked for: the name its responses carry, and the adapter to
    run it with (None: the base model)."""

    name: str
    lora: LoRARequest | None = None


@dataclass
class ServerContext:
    engine: EngineClient
    config: ServeConfig
    model_info: ModelInfo
    #: --chat-template's text, or the model's own template (GGUF metadata) if it has one
    chat_template: str | None
    metrics: ServerMetrics
    request_log: RequestLogger
    token_text: TokenText
    parsing: ChatParsing
    lifecycle: Lifecycle
    #: the Responses API's store and background runs
    responses: ResponsesService
    #: where bodies are parsed, templates rendered and prompts tokenized
    preprocess: PreprocessPool
    #: the longest text that could fit the context (``fw.server.preprocess``)
    max_prompt_chars: int
    #: spans of finished requests (--otlp-traces-endpoint), else None
    tracer: RequestTracer | None = None

    @classmethod
    def create(cls, engine: EngineClient, config: ServeConfig) -> "ServerContext":
        """Fails (ValueError) on a bad --chat-template or parser option, so the server
        does not start."""
        frontend = config.frontend
        template = chat_template_option(frontend.chat_template) or engine.model_info.chat_template
        info = engine.model_info
        return cls(
            engine=engine, config=config, model_info=info, chat_template=template,
            metrics=ServerMetrics(engine, info.name),
            request_log=RequestLogger(
                enabled=config.options.log_requests,
                log_outputs=frontend.enable_log_outputs,
                max_len=frontend.max_log_len,
            ),
            token_text=TokenText(engine.tokenizer),
            parsing=ChatParsing(engine.tokenizer, tool_call_parser=frontend.tool_call_parser,
                                reasoning_parser=config.structured_outputs.reasoning_parser,
                                tool_parser_plugin=frontend.tool_parser_plugin),
            lifecycle=Lifecycle(engine, config.options.shutdown_timeout),
            responses=ResponsesService(ResponseStore(
                max_entries=frontend.responses_store_max_entries, max_bytes=frontend.responses_store_max_bytes,
                ttl=frontend.responses_store_ttl)),
            preprocess=PreprocessPool(frontend.preprocess_workers, frontend.preprocess_queue_size),
            max_prompt_chars=info.max_model_len * longest_token_chars(engine.tokenizer),
            tracer=RequestTracer(endpoint) if (endpoint := config.options.otlp_traces_endpoint) else None,
        )

    @property
    def tokenizer(self) -> Any:
        return self.engine.tokenizer

    def require_tokenizer(self, param: str) -> Any:
        """The tokenizer, or NotSupportedError naming ``param`` when the server runs
        without one (--skip-tokenizer-init: token ids in, token ids out)."""
        if self.engine.tokenizer is None:
            raise NotSupportedError(
                "the server runs without a tokenizer (--skip-tokenizer-init): send prompt token ids to "
                "/v1/completions; text, chat and detokenizing need the tokenizer", param=param)
        return self.engine.tokenizer

    @property
    def served_names(self) -> list[str]:
        return self.model_info.served_model_names or [self.model_info.name]

    def find_lora(self, name: str) -> LoRARequest | None:
        """The loaded adapter of that name (the engine's list changes at run time)."""
        return next((lora for lora in self.engine.list_loras() if lora.lora_name == name), None)

    def resolve_model(self, requested: str | None) -> ServedModel:
        """What a request's ``model`` names. Adapters are looked up first, so an adapter
        named like a served name wins (vLLM documents the same rule); unknown names are
        a 404 that lists what is served."""
        if requested is None:
            return ServedModel(self.model_info.name)
        lora = self.find_lora(requested)
        if lora is not None:
            return ServedModel(requested, lora)
        if requested not in self.served_names:
            adapters = [lora.lora_name for lora in self.engine.list_loras()]
            also = f" and the LoRA adapters {', '.join(map(repr, adapters))}" if adapters else ""
            raise ModelNotFoundError(
                f"the model {requested!r} does not exist; this server serves "
                f"{', '.join(map(repr, self.served_names))}{also}",
                param="model",
            )
        return ServedModel(self.model_info.name)

    def request_template(self, fields: ChatTemplateFields | TokenizeRequest) -> str | None:
        """The template for one request: its own (only when trusted), else the server's."""
        if fields.chat_template is not None or "chat_template" in (fields.chat_template_kwargs or {}):
            if not self.config.frontend.trust_request_chat_template:
                raise InvalidParameterError(
                    "chat_template", "this server does not accept chat templates in requests "
                    "(start it with --trust-request-chat-template to allow them)",
                )
            return fields.chat_template or fields.chat_template_kwargs["chat_template"]
        return self.chat_template

    def response_role(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        if add_generation_prompt or not messages:
            return self.config.frontend.response_role
        return messages[-1]["role"]


def base_request_id(request: Request, body_id: str | None) -> str:
    """The request's own id, else the X-Request-Id the client (or the id middleware)
    gave, else a fresh one."""
    return (body_id or request.scope.get("fw.request_id")
            or request.headers.get("x-request-id") or uuid.uuid4().hex)


def get_context(request: Request) -> ServerContext:
    """FastAPI dependency: the app's ServerContext."""
    return request.app.state.fw
