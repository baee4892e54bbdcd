"""Registers the built-in structured-output backend."""

from fw import hookimpl


@hookimpl
def fw_register_structured_output_backends(register):
    register("xgrammar", "fw_builtins.structured.xgrammar_backend:XGrammarBackend")
