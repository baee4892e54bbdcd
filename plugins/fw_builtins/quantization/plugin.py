"""Registers the built-in quantization (hook implementations are added as each lands)."""

from fw import hookimpl  # noqa: F401
