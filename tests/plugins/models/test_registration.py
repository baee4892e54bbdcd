"""The built-in architectures are registered under their Hugging Face names, and `fw
plugins` lists them."""

from __future__ import annotations

from fw_builtins.models.plugin import ARCHITECTURES

EXPECTED = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Gemma2ForCausalLM",
            "Gemma3ForCausalLM", "Phi3ForCausalLM", "MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM",
            # encoders, for the pooling runner
            "BertModel", "BertForSequenceClassification", "RobertaModel", "RobertaForSequenceClassification",
            "XLMRobertaModel", "XLMRobertaForSequenceClassification"}


def test_every_architecture_is_registered_and_loads():
    from fw.plugins import registry

    models = registry("model")
    assert {name for names in ARCHITECTURES.values() for name in names} == EXPECTED
    for name in EXPECTED:
        assert models.load(name).__name__ == name


def test_fw_plugins_lists_them(fw_cli):
    result = fw_cli("plugins", env={"FW_PLUGINS": ""})
    assert result.returncode == 0, result.stderr
    listed = next(line for line in result.stdout.splitlines() if line.strip().startswith("model:"))
    assert set(listed.split(":", 1)[1].replace(" ", "").split(",")) >= EXPECTED
