"""Registers the built-in reasoning (hook implementations are added as each lands)."""

from fw import hookimpl  # noqa: F401
