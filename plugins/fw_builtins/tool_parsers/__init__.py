"""Built-in tool_parsers plugins."""
