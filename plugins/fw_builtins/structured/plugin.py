"""Registers the built-in structured-output backends (xgrammar and llguidance)."""

from fw import hookimpl


@hookimpl
def fw_register_structured_output_backends(register):
    register("xgrammar", "fw_builtins.structured.xgrammar_backend:XGrammarBackend")
    register("guidance", "fw_builtins.structured.guidance_backend:GuidanceBackend", aliases=("llguidance",))

