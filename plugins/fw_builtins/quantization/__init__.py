"""Built-in quantization plugins."""
