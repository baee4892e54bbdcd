"""Built-in speculative-decoding proposers."""
