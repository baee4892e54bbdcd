"""Built-in logits processors (``fw.logits_processors``), registered by
``fw_builtins.structured.plugin``."""
