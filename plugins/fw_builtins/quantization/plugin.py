"""Registers the built-in quantization methods."""

from fw import hookimpl


@hookimpl
def fw_register_quantization_methods(register):
    register("none", "fw.layers.quantization:QuantizationMethod", aliases=["dense"])
    register("int4", "fw_builtins.quantization.int4:Int4WeightOnly")
    register("gguf", "fw_builtins.quantization.gguf:GGUFBlocks")
    register("gguf_lean", "fw_builtins.quantization.gguf:GGUFBlocksLean")
