"""Registers the built-in model architectures (Hugging Face architecture names) and the
poolers that turn a pooling model's hidden states into its outputs."""

from fw import hookimpl

#: module -> the architectures it defines
ARCHITECTURES = {
    "llama": ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"),
    "gemma": ("Gemma2ForCausalLM", "Gemma3ForCausalLM"),
    "phi3": ("Phi3ForCausalLM",),
    "mixtral": ("MixtralForCausalLM",),
    "qwen_moe": ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"),
    "bert": ("BertModel", "BertForSequenceClassification", "RobertaModel", "RobertaForSequenceClassification",
             "XLMRobertaModel", "XLMRobertaForSequenceClassification"),
}


@hookimpl
def fw_register_models(register):
    for module, architectures in ARCHITECTURES.items():
        for arch in architectures:
            register(arch, f"fw_builtins.models.{module}:{arch}")


@hookimpl
def fw_register_poolers(register):
    for name, cls in (("MEAN", "MeanPooler"), ("CLS", "CLSPooler"), ("LAST", "LastPooler"), ("ALL", "AllPooler")):
        register(name, f"fw_builtins.poolers.basic:{cls}")
