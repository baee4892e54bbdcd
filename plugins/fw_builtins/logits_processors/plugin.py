"""Registers the built-in logits processors."""

from fw import hookimpl


@hookimpl
def fw_register_logits_processors(register):
    register("target_token", "fw_builtins.logits_processors.target_token:TargetTokenLogitsProcessor",
             aliases=("dummy",))
