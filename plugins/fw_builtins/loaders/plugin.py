"""Registers the built-in loaders (hook implementations are added as each lands)."""

from fw import hookimpl  # noqa: F401
