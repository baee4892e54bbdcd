"""Registers the built-in attention backends."""

from fw import hookimpl


@hookimpl
def fw_register_attention_backends(register):
    register("torch", "fw_builtins.attention.torch_backend:TorchAttentionBackend")
    register("triton", "fw_builtins.attention.triton_backend:TritonAttentionBackend")
