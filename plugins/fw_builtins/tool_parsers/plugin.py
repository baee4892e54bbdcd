"""Registers the built-in tool_parsers (hook implementations are added as each lands)."""

from fw import hookimpl  # noqa: F401
