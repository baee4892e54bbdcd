"""GPT-2 for fw: ``pip install fw-plugin-gpt2`` and ``fw serve`` loads GPT-2 checkpoints."""
