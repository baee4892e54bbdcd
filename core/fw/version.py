"""The single source of fw's version (read by pyproject.toml and `fw --version`)."""

__version__ = "0.1.0"
