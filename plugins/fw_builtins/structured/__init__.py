"""Built-in structured plugins."""
