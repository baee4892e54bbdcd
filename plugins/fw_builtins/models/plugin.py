"""Registers the built-in models (hook implementations are added as each lands)."""

from fw import hookimpl  # noqa: F401
