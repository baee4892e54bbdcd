"""Registers the built-in model architectures (Hugging Face architecture names)."""

from fw import hookimpl


@hookimpl
def fw_register_models(register):
    for arch in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        register(arch, f"fw_builtins.models.llama:{arch}")
