"""Registers the built-in attention (hook implementations are added as each lands)."""

from fw import hookimpl  # noqa: F401
