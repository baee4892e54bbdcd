"""The OpenAI-compatible HTTP server: ``build_app(engine, config)`` returns the FastAPI
application; ``fw.server.launch`` runs it under uvicorn."""

from fw.server.app import build_app

__all__ = ["build_app"]
