"""Each engine-side hook exercised through the code that consumes it: a plugin object
registered in-process registers a name, and selecting that name by its option makes fw
use the plugin's class. (Parsers, models, commands and middleware are exercised by the
contrib plugins' tests, run after a real install by tests/contrib.)"""

from __future__ import annotations

import pytest

from fw import SamplingParams, hookimpl
from fw.model_loader.base import WeightLoader
from fw.layers.quantization import QuantizationMethod
from fw.plugins import register_plugin
from fw_builtins.attention.torch_backend import TorchAttentionBackend

GREEDY = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)
PROMPT = "The capital of France is"


class ReadsSafetensors(WeightLoader):
    """A loader of the plain safetensors file, written as a plugin would write one."""

    name = "hooktest_weights"
    opened: list = []

    def iter_weights(self):
        from safetensors.torch import load_file

        ReadsSafetensors.opened.append(self.path)
        yield from load_file(self.path / "model.safetensors").items()


class CountingQuantization(QuantizationMethod):
    """Plain weights, but every moment of the contract is counted."""

    name = "hooktest_quant"
    calls = {"create": 0, "after_loading": 0, "lm_head": 0}

    def create_weights(self, layer, in_features, out_features, dtype, device):
        self.calls["create"] += 1
        super().create_weights(layer, in_features, out_features, dtype, device)

    def process_weights_after_loading(self, layer):
        self.calls["after_loading"] += 1
        return super().process_weights_after_loading(layer)

    def pack_lm_head(self, matrix):
        self.calls["lm_head"] += 1
        return super().pack_lm_head(matrix)


class CountingAttention(TorchAttentionBackend):
    name = "hooktest_attention"
    calls = 0

    @classmethod
    def priority(cls, device):
        return -1  # never chosen by "auto": only by its name

    def forward(self, *args, **kwargs):
        CountingAttention.calls += 1
        return super().forward(*args, **kwargs)


class EnginePlugin:
    @hookimpl
    def fw_register_load_formats(self, register):
        register("hooktest_weights", ReadsSafetensors)

    @hookimpl
    def fw_register_quantization_methods(self, register):
        register("hooktest_quant", CountingQuantization)

    @hookimpl
    def fw_register_attention_backends(self, register):
        register("hooktest_attention", CountingAttention)

    @hookimpl
    def fw_register_structured_output_backends(self, register):
        register("hooktest_structured", "tests.core.test_hooks:ToyStructuredBackend")


class ToyStructuredBackend:
    def __init__(self, tokenizer, vocab_size):
        self.vocab_size = vocab_size


@pytest.fixture(scope="module")
def plugin():
    unregister = register_plugin(EnginePlugin(), "hooktest")
    yield
    unregister()


@pytest.fixture(scope="module")
def reference(tiny_llama, plugin):
    from fw import LLM

    return LLM(str(tiny_llama), dtype="float32").generate([PROMPT], GREEDY, use_tqdm=False)[0].outputs[0].token_ids


def generate(path, **options):
    from fw import LLM

    return LLM(str(path), dtype="float32", **options).generate([PROMPT], GREEDY, use_tqdm=False)[0].outputs[0].token_ids


def test_fw_register_load_formats_name_selects_the_loader(tiny_llama, reference):
    assert generate(tiny_llama, load_format="hooktest_weights") == reference
    assert ReadsSafetensors.opened == [tiny_llama]


def test_fw_register_quantization_methods_name_reaches_every_linear_layer(tiny_llama, reference):
    assert generate(tiny_llama, quantization="hooktest_quant") == reference
    calls = CountingQuantization.calls
    # 2 layers x (qkv, o, gate_up, down) in the tiny Llama, and its LM head
    assert calls["create"] == calls["after_loading"] == 8 and calls["lm_head"] == 1


def test_fw_register_attention_backends_name_selects_the_backend(tiny_llama, reference):
    CountingAttention.calls = 0
    assert generate(tiny_llama, attention_backend="hooktest_attention") == reference
    assert CountingAttention.calls > 0


def test_fw_register_structured_output_backends_name_selects_the_backend(plugin):
    from fw.config.structured import StructuredOutputsConfig
    from fw.structured.manager import StructuredOutputManager

    config = StructuredOutputsConfig(guided_decoding_backend="hooktest_structured")
    manager = StructuredOutputManager(config, tokenizer=None, vocab_size=7)
    backend = manager.backend(manager.default)
    assert isinstance(backend, ToyStructuredBackend) and backend.vocab_size == 7


def test_unknown_names_list_what_plugins_registered(plugin):
    from fw.plugins import registry

    with pytest.raises(ValueError, match="unknown attention backend 'nope'; available: .*hooktest_attention"):
        registry("attention_backend").load("nope")


def test_a_plugin_replaces_a_builtin_name_it_registers_again():
    """fw_register_tool_parsers from a later plugin wins over the built-in of that name."""
    from fw.plugins import registry

    class Replacement:
        @hookimpl
        def fw_register_tool_parsers(self, register):
            register("hermes", "tests.core.test_hooks:ToyStructuredBackend")

    unregister = register_plugin(Replacement(), "replacement")
    try:
        assert registry("tool_parser").entry("hermes").plugin == "replacement"
    finally:
        unregister()
    assert registry("tool_parser").entry("hermes").plugin == "tool_parsers"
