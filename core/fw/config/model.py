"""ModelConfig: which model, its data type and context length."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from fw.config.base import ConfigGroup, option

#: what --override-generation-config may set (generation_config.json names)
OVERRIDE_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens")
DType = Literal["auto", "bfloat16", "float16", "float32", "half", "float"]


class ModelConfig(ConfigGroup):
    group_title = "ModelConfig"
    group_help = "Configuration for the model."

    model: str | None = option(
        None,
        "Path of the model to serve: a Hugging Face model folder or a .gguf file. "
        "If unspecified, the embedded default SmolLM2-135M-Instruct (Q4_1 GGUF) is used. "
        "fw never downloads weights.",
    )
    tokenizer: str | None = option(
        None, "Path of the Hugging Face tokenizer to use. If unspecified, the model's is used."
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
        "Always run the model in eager PyTorch, never through CUDA graphs.",
        unsupported="fw has no CUDA graphs or compiled mode to turn off: it always runs eagerly "
                    "(its CPU kernels are ahead-of-time C); drop the option",
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
    logprobs_mode: Literal["raw_logprobs", "raw_logits", "processed_logprobs", "processed_logits"] = option(
        "raw_logprobs",
        "What logprobs report: the model's raw log-probabilities, before penalties, temperature and "
        "top-k/top-p.",
        unsupported={mode: "fw reports raw_logprobs only (the model's own distribution, before any "
                           "sampling processing)" for mode in ("raw_logits", "processed_logprobs", "processed_logits")},
    )
    logits_processors: list[str] | None = option(
        None,
        "Logits processors to load (class names).",
        unsupported="fw has no logits-processor plugins yet; use logit_bias, bad_words, "
                    "allowed_token_ids or structured outputs per request",
    )
    logits_processor_pattern: str | None = option(
        None,
        "Regex of logits processor names requests may pass in logits_processors.",
        unsupported="fw has no per-request logits processors yet; use logit_bias, bad_words, "
                    "allowed_token_ids or structured outputs",
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

    @field_validator("override_generation_config")
    @classmethod
    def _override_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(OVERRIDE_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; keys are {', '.join(OVERRIDE_KEYS)}")
        return value

