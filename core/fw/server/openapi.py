"""The OpenAPI schema says what the server really answers.

Routes declare their own answers (``fw.server.routers.ERROR_RESPONSES``, the
text/event-stream of a streamed completion, the empty body of /health). What FastAPI adds
on its own and fw never sends is taken out here: the 422 "Validation Error" of every
route with a body (fw answers validation errors with a 400 in OpenAI's error shape) and
its schemas. A schema-driven fuzzer checks the result (tests/core/server/test_openapi_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_FASTAPI_ONLY_SCHEMAS = ("HTTPValidationError", "ValidationError")


def describe_real_answers(app: FastAPI) -> None:
    """Make ``app.openapi()`` drop the answers fw never gives."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = schema.get("components", {}).get("schemas", {})
            for name in _FASTAPI_ONLY_SCHEMAS:
                schemas.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
