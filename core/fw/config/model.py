"""ModelConfig: which model, its data type and context length."""

from __future__ import annotations

from typing import Any, Literal

from fw.config.base import ConfigGroup, option

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
        "Accepted for vLLM compatibility: fw always runs the forward pass in eager PyTorch "
        "(on the CPU, torch.compile measured no faster than fw's eager kernels and took "
        "over a minute to start).",
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
