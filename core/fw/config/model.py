"""ModelConfig: which model, its data type and context length."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator, model_validator

from fw.config.base import ConfigGroup, option
from fw.config.pooler import Convert, PoolerConfig, Runner, Task, parse_pooler_config, runner_and_convert

#: what --override-generation-config may set (generation_config.json names)
OVERRIDE_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens")
DType = Literal["auto", "bfloat16", "float16", "float32", "half", "float"]


class ModelConfig(ConfigGroup):
    group_title = "ModelConfig"
    group_help = "Configuration for the model."

    model: str | None = option(
        None,
        "The model to serve: a Hugging Face model folder, a .gguf file, or a Hugging Face "
        "hub id (ORG/NAME; ORG/NAME:QUANT picks that GGUF file of a repo, e.g. "
        ":Q4_K_M), looked up in the local Hugging Face cache first and downloaded if "
        "missing (unless HF_HUB_OFFLINE=1). If unspecified, the embedded default "
        "SmolLM2-135M-Instruct (Q4_1 GGUF) is used.",
    )
    runner: Runner = option(
        "auto",
        'The model runner: "generate" (text generation: paged KV cache, sampler) or "pooling" (one output '
        "per input: embeddings, class probabilities, per-token hidden states). \"auto\" picks by "
        "architecture: pooling for encoders (BertModel) and *ForSequenceClassification, else generate.",
        unsupported={"draft": "fw has no draft-model runner; speculative decoding is configured with "
                              "--speculative-config"},
    )
    convert: Convert = option(
        "auto",
        'Adapt the model to the pooling runner: "embed" turns a generative model into an embedding model '
        '(last-token pooling, normalised), "classify" uses the model\'s classification head, "none" keeps '
        'the architecture as it is. "auto": embed for a generative model under --runner pooling, else none. '
        "embed and classify imply --runner pooling.",
        unsupported={"reward": "fw serves no reward models"},
    )
    task: Task | None = option(
        None,
        "Deprecated (vLLM's): generate means --runner generate; embed/embedding --convert embed; "
        "classify/score --convert classify.",
        unsupported={"reward": "fw serves no reward models", "transcription": "fw serves text-only models",
                     "draft": "fw has no draft-model runner; speculative decoding is configured with "
                              "--speculative-config"},
    )
    tokenizer: str | None = option(
        None,
        "The tokenizer to use: a Hugging Face tokenizer folder, a .gguf file, or a hub id "
        "(only its tokenizer files are downloaded). If unspecified, the model's is used.",
    )
    revision: str | None = option(
        None,
        "The revision of a hub model to use: a branch name, a tag name, or a commit id. "
        "If unspecified, the default branch.",
    )
    code_revision: str | None = option(
        None,
        "The revision of a hub model's own code (with --trust-remote-code).",
        unsupported="fw reads a hub model's code from the same revision as its weights; give that "
                    "revision with --revision",
    )
    tokenizer_revision: str | None = option(
        None,
        "The revision of the hub tokenizer (--tokenizer, else the model's repo): a branch "
        "name, a tag name, or a commit id. If unspecified, the default branch for "
        "--tokenizer, the model's own files otherwise.",
    )
    hf_token: str | None = option(
        None,
        "The token sent to the Hugging Face hub (private and gated repos). If unspecified, "
        "HF_TOKEN or the token `hf auth login` saved is used.",
    )
    trust_remote_code: bool = option(
        False, "Trust remote code in the model folder when loading its config and tokenizer."
    )
    dtype: DType = option(
        "auto",
        'Data type for model weights and activations. "auto" uses bfloat16 on a CPU with '
        'native bf16 (and on CUDA), else float32; "half" is float16 and "float" is float32.',
    )
    seed: int = option(0, "Random seed for sampling requests that do not set their own seed.")
    max_model_len: int | None = option(
        None,
        "Model context length (prompt and output). If unspecified, derived from the model "
        "config. Accepts k/m/g/K/M/G (1k = 1000, 1K = 1024, 25.6k = 25600).",
        size=True,
    )
    quantization: str | None = option(
        None,
        "Method used to quantize the weights. If unspecified, the model config's "
        "quantization_config (or the GGUF file's tensor types) decides.",
        short="-q",
    )
    enforce_eager: bool = option(
        False,
        "Always run the model eagerly: no CUDA graphs of decode steps. On a CPU, where no "
        "graphs are captured, nothing changes.",
    )
    max_logprobs: int = option(
        20, "Maximum number of log probabilities a request may ask for; -1 means no cap."
    )
    served_model_name: list[str] | None = option(
        None,
        "The model name(s) used in the API (repeat the option for several). The first is "
        "the one responses carry and the metrics' model_name label. Defaults to --model.",
    )
    rope_scaling: dict[str, Any] = option(
        {},
        'RoPE scaling configuration, e.g. {"rope_type":"dynamic","factor":2.0}. A JSON '
        "string or keys passed individually (--rope-scaling.factor 2.0).",
        json=True,
    )
    rope_theta: float | None = option(None, "RoPE theta. Use with --rope-scaling.")
    hf_overrides: dict[str, Any] = option(
        {}, "Arguments forwarded to the Hugging Face config (JSON, or dotted keys).", json=True
    )
    attention_backend: str = option(
        "auto",
        'Attention backend: "torch" (CPU), "triton" (CUDA), or "auto" to pick by device.',
    )
    tokenizer_mode: Literal["auto", "slow", "mistral", "custom"] = option(
        "auto",
        '"auto" uses the model\'s Hugging Face tokenizer (the fast, Rust one).',
        unsupported={
            "slow": "fw loads tokenizers through transformers 5, which has only fast (Rust) tokenizers; "
                    "use 'auto'",
            "mistral": "fw does not ship mistral_common's tokenizer; use 'auto' (the model's "
                       "Hugging Face tokenizer files)",
            "custom": "fw has no registry of custom tokenizers; point --tokenizer at a Hugging Face "
                      "tokenizer folder",
        },
    )
    hf_config_path: str | None = option(
        None, "Folder holding the config.json to use instead of the model's own."
    )
    config_format: Literal["auto", "hf", "mistral"] = option(
        "auto",
        '"auto" and "hf" read the Hugging Face config.json (or a GGUF file\'s metadata).',
        unsupported={"mistral": "fw reads Hugging Face config.json files, not Mistral's params.json; "
                                "use the model's Hugging Face folder"},
    )
    skip_tokenizer_init: bool = option(
        False,
        "Load no tokenizer: prompts must be token ids, outputs carry token ids and no text (chat, "
        "text prompts, stop strings and structured outputs are refused).",
    )
    generation_config: str = option(
        "auto",
        'Sampling defaults for requests that leave a field unset: "auto" reads the model\'s '
        'generation_config.json (GGUF: none), "vllm" uses the API\'s own defaults only, a folder '
        "path reads that folder's generation_config.json. Its max_new_tokens caps every "
        "request's max_tokens.",
    )
    override_generation_config: dict[str, Any] = option(
        {},
        'Sampling defaults set on top of --generation-config, e.g. {"temperature": 0.5}; keys: '
        "temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens. JSON, or dotted keys.",
        json=True,
    )
    enable_sleep_mode: bool = option(
        False,
        "Offer POST /sleep?level=1|2, POST /wake_up and GET /is_sleeping: level 1 frees the KV cache, "
        "level 2 the weights too (read again from the model's files on waking).",
    )
    disable_sliding_window: bool = option(
        False,
        "Run sliding-window models with full attention, capping the context length at the window "
        "size.",
    )
    disable_cascade_attn: bool = option(
        False,
        "Disable cascade attention. fw never uses cascade attention, so this always holds.",
    )
    model_impl: Literal["auto", "vllm", "transformers", "terratorch"] = option(
        "auto",
        '"auto" and "vllm" run the serving framework\'s own model implementation (fw\'s model plugins).',
        unsupported={
            "transformers": "fw runs its own model implementations only (no Transformers modeling "
                            "fallback); `fw plugins` lists the architectures it serves",
            "terratorch": "fw serves no TerraTorch models",
        },
    )
    pooler_config: dict[str, Any] | None = option(
        None,
        "Defaults of the pooling runner, as JSON or dotted keys: pooling_type (MEAN, CLS, LAST, ALL, or a "
        "plugin's pooler), normalize, dimensions (Matryoshka models only), activation (a classifier's "
        "softmax/sigmoid). Unset keys come from the model: a sentence-transformers folder's "
        "1_Pooling/config.json and Normalize module, else the architecture's choice.",
        json=True,
    )
    override_pooler_config: dict[str, Any] | None = option(
        None, "Deprecated (vLLM's) spelling of --pooler-config.", json=True,
    )
    enable_embeddings: bool = option(
        False,
        "Also serve /v1/embeddings (and /pooling, /score, /rerank by cosine) from a generative model, "
        "scheduled together with generation: the hidden state of the last prompt token, normalised "
        "(--pooler-config changes both). vLLM needs a second instance with --convert embed for this.",
    )
    logprobs_mode: Literal["raw_logprobs", "raw_logits", "processed_logprobs", "processed_logits"] = option(
        "raw_logprobs",
        "What logprobs report: the model's raw log-probabilities, before penalties, temperature and "
        "top-k/top-p.",
        unsupported={mode: "fw reports raw_logprobs only (the model's own distribution, before any "
                           "sampling processing)" for mode in ("raw_logits", "processed_logprobs", "processed_logits")},
    )
    logits_processors: list[str] | None = option(
        None,
        "Logits processors to enable: names plugins registered (fw plugins lists them; built-in: "
        "target_token) or import paths (package.module:Class, or vLLM's package.module.Class) of "
        "fw.logits_processors.LogitsProcessor subclasses (offline, the classes themselves); repeatable. "
        "Requests pass their arguments in vllm_xargs. Those installed in the fw.logits_processors "
        "entry-point group are always enabled.",
    )
    logits_processor_pattern: str | None = option(
        None,
        "Regex (re.match) of the logits processors a request may name itself in logits_processors "
        "(import paths); without it such requests are refused.",
    )
    enable_prompt_embeds: bool = option(
        False,
        "Accept prompt embeddings (prompt_embeds) as input.",
        unsupported="fw takes prompts as text or token ids only",
    )
    override_attention_dtype: str | None = option(
        None,
        "Run attention in another dtype than the model's.",
        unsupported="fw's attention runs in the model's dtype; choose it with --dtype",
    )
    allowed_local_media_path: str = option(
        "",
        "Server folder whose images and videos requests may read.",
        unsupported="fw serves text-only models and reads no media",
    )
    allowed_media_domains: list[str] | None = option(
        None,
        "Domains media URLs may come from.",
        unsupported="fw serves text-only models and fetches no media",
    )
    io_processor_plugin: str | None = option(
        None,
        "IOProcessor plugin (pooling inputs and outputs) to load at start-up.",
        unsupported="fw has no IOProcessor plugins; its plugin kinds are listed by `fw plugins`",
    )

    @field_validator("pooler_config", "override_pooler_config")
    @classmethod
    def _pooler_keys(cls, value: dict[str, Any] | None, info) -> dict[str, Any] | None:
        parsed = parse_pooler_config(value, "--" + info.field_name.replace("_", "-"))
        return None if parsed is None else parsed.model_dump(exclude_none=True)

    @model_validator(mode="after")
    def _runner_options(self) -> "ModelConfig":
        runner, _ = runner_and_convert(self.runner, self.convert, self.task)
        if self.pooler_config is not None and self.override_pooler_config is not None:
            raise ValueError("--override-pooler-config is the deprecated spelling of --pooler-config; give one")
        if self.enable_embeddings and runner == "pooling":
            raise ValueError("--enable-embeddings adds embeddings to a generative model; with the pooling "
                             "runner the model embeds already (drop one of them)")
        return self

    def runner_and_convert(self) -> tuple[str, str]:
        """(--runner, --convert) as given, with --task and --convert's implications applied."""
        return runner_and_convert(self.runner, self.convert, self.task)

    def pooler(self) -> PoolerConfig:
        """--pooler-config (or its deprecated spelling); empty when neither is given."""
        return PoolerConfig(**(self.pooler_config or self.override_pooler_config or {}))

    @field_validator("logits_processors", mode="before")
    @classmethod
    def _processor_classes(cls, value: Any) -> Any:
        """Offline, ``LLM(logits_processors=[MyProcessor])`` takes classes too (as vLLM's
        does): each becomes its import path, which the engine imports."""
        if not isinstance(value, (list, tuple)):
            return value
        names = []
        for item in value:
            if isinstance(item, type):
                if "<locals>" in item.__qualname__:
                    raise ValueError(f"{item.__qualname__} is defined inside a function; define it at module "
                                     "level (fw imports a logits processor by its path)")
                item = f"{item.__module__}:{item.__qualname__}"
            names.append(item)
        return names

    @field_validator("override_generation_config")
    @classmethod
    def _override_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(OVERRIDE_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; keys are {', '.join(OVERRIDE_KEYS)}")
        return value

