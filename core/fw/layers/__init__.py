"""The layer library model plugins build from: linear (quantization- and LoRA-aware),
norms, rotary embeddings, attention, embeddings and the LM head."""
