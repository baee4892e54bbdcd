"""The entry point fw loads: it only names the model class, so registering imports no
torch; ``fw_plugin_gpt2.model`` is imported when a GPT-2 checkpoint is loaded."""

from fw import hookimpl


@hookimpl
def fw_register_models(register):
    register("GPT2LMHeadModel", "fw_plugin_gpt2.model:GPT2LMHeadModel")
