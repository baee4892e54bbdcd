"""Registers the built-in model architectures (Hugging Face architecture names)."""

from fw import hookimpl

#: module -> the architectures it defines
ARCHITECTURES = {
    "llama": ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"),
    "gemma": ("Gemma2ForCausalLM", "Gemma3ForCausalLM"),
    "phi3": ("Phi3ForCausalLM",),
    "mixtral": ("MixtralForCausalLM",),
    "qwen_moe": ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"),
}


@hookimpl
def fw_register_models(register):
    for module, architectures in ARCHITECTURES.items():
        for arch in architectures:
            register(arch, f"fw_builtins.models.{module}:{arch}")
