"""Registers the built-in model architectures (Hugging Face architecture names) and the
poolers that turn a pooling model's hidden states into its outputs."""

from fw import hookimpl


@hookimpl
def fw_register_models(register):
    for arch in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        register(arch, f"fw_builtins.models.llama:{arch}")
    for arch in ("BertModel", "BertForSequenceClassification", "RobertaModel", "RobertaForSequenceClassification",
                 "XLMRobertaModel", "XLMRobertaForSequenceClassification"):
        register(arch, f"fw_builtins.models.bert:{arch}")


@hookimpl
def fw_register_poolers(register):
    for name, cls in (("MEAN", "MeanPooler"), ("CLS", "CLSPooler"), ("LAST", "LastPooler"), ("ALL", "AllPooler")):
        register(name, f"fw_builtins.poolers.basic:{cls}")
