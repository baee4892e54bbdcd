"""fw's built-in plugins. They are found only through the `fw` entry points declared in
pyproject.toml, exactly like a third-party plugin, and use only fw's public API."""
