"""Registers the built-in tool-call parsers under vLLM's names and aliases."""

from fw import hookimpl


@hookimpl
def fw_register_tool_parsers(register):
    register("hermes", "fw_builtins.tool_parsers.hermes:HermesToolParser")
    register("mistral", "fw_builtins.tool_parsers.mistral:MistralToolParser")
    register("llama3_json", "fw_builtins.tool_parsers.llama3_json:Llama3JsonToolParser",
             aliases=["llama4_json"])
    register("pythonic", "fw_builtins.tool_parsers.pythonic:PythonicToolParser")
