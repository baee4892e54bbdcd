"""Structured outputs: per-request grammars turned into a token bitmask each step."""
