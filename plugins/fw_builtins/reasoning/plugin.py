"""Registers the built-in reasoning parsers under vLLM's names."""

from fw import hookimpl


@hookimpl
def fw_register_reasoning_parsers(register):
    register("deepseek_r1", "fw_builtins.reasoning.deepseek_r1:DeepSeekR1ReasoningParser")
    register("qwen3", "fw_builtins.reasoning.qwen3:Qwen3ReasoningParser")
