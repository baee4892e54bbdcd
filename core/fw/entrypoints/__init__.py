"""User-facing entry points that run the engine in-process (the offline `LLM`)."""
