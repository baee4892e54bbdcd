"""The engine core in its own process (or several, for data parallelism): the busy loop
that runs ``LLMEngine`` there, the client the API server talks to it through, and the
launcher that starts them and sees them ready."""
