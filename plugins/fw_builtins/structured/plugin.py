"""Registers the built-in structured-output backends (xgrammar and llguidance) and the
built-in logits processors (the other way to constrain what a request samples; they live
here so the installed entry points need no new one)."""

from fw import hookimpl


@hookimpl
def fw_register_structured_output_backends(register):
    register("xgrammar", "fw_builtins.structured.xgrammar_backend:XGrammarBackend")
    register("guidance", "fw_builtins.structured.guidance_backend:GuidanceBackend", aliases=("llguidance",))


@hookimpl
def fw_register_logits_processors(register):
    register("target_token", "fw_builtins.logits_processors.target_token:TargetTokenLogitsProcessor",
             aliases=("dummy",))
