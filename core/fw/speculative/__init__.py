"""Speculative decoding: proposers guess the next tokens of running requests (plugins),
the engine checks them in one forward pass and keeps what the model would have made."""
