"""Registers the built-in structured (hook implementations are added as each lands)."""

from fw import hookimpl  # noqa: F401
